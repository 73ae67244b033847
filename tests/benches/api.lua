-- wrk script of benches/api.rs. `-- list` sends the URL as given (GET); `-- search` posts
-- varied Russian queries to it. done() prints one machine-readable line the bench parses
-- (latencies in microseconds; p95 is not among wrk's own --latency percentiles).

local queries = {
  "холодный свет в лобби",
  "долго ждали заселения на ресепшн",
  "шумно в номере ночью",
  "что гости говорят о завтраках",
  "персонал не знает меню",
  "навигация к лифтам",
  "запах в коридоре",
  "неудобные кресла в баре",
  "температура воды в бассейне",
  "музыка слишком громкая",
  "грязная посуда на столах",
  "освещение в ресторане вечером",
  "вежливость администратора",
  "сломанный кондиционер",
  "чистота в спа-зоне",
  "долгое ожидание счёта",
  "вид из окна номера",
  "мебель выглядит изношенной",
  "не хватает розеток у кровати",
  "приветствие гостя у входа",
}

local mode = "list"
local n = 0

function init(args)
  mode = args[1] or "list"
  if mode == "search" then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
  end
end

function request()
  if mode ~= "search" then
    return wrk.format()
  end
  n = n + 1
  local q = queries[(n % #queries) + 1]
  return wrk.format(nil, nil, nil, '{"query": "' .. q .. '", "limit": 10}')
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "VOXBENCH requests=%d duration_us=%d bytes=%d non2xx=%d socket_errors=%d " ..
    "p50_us=%d p95_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
