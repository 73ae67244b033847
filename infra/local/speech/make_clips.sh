#!/usr/bin/env bash
# Generate synthetic test speech for VoxPersona's test suite and benchmarks.
#
# Reads the utterances in texts/ (ru_*.txt, en_*.txt), speaks them with
# festival, and writes every audio format the product ingests, a set of
# deliberately broken "special" clips, a 10-minute Russian benchmark clip and
# manifest.tsv into ${VOX_CACHE:-$HOME/.cache/voxpersona}/speech/.
# Nothing is written into the repository. See README.md beside this file.
#
# Idempotent: an output is rebuilt only when it is missing or not newer than
# what it is made from. Texts are compared by content (a cache copy is kept),
# so a fresh git checkout does not force a rebuild; editing this script does.
#
# Environment:
#   VOX_CACHE=DIR          cache root (default $HOME/.cache/voxpersona)
#   VOX_SPEECH_FORCE=1     rebuild everything
#   VOX_SPEECH_NO_INSTALL=1  never call apt-get; fail if a package is missing
set -euo pipefail

START_TS=$(date +%s.%N)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
TEXTS="$HERE/texts"
CACHE_ROOT=${VOX_CACHE:-${HOME:?HOME is unset; set VOX_CACHE}/.cache/voxpersona}
OUT="$CACHE_ROOT/speech"
RAW="$OUT/raw"
FORCE=${VOX_SPEECH_FORCE:-0}

LONG_SECONDS=600           # exact length of the benchmark clip
LONG_RATE=16000
PAUSES=(0.5 1.25 0.75 2.0 1.0 1.5 0.6 1.8)   # seconds between clips, cycled
NOISE_RMS_DB=-45           # target RMS level of noise_20s.wav (dBFS)

PKGS=(festival festvox-ru festvox-us-slt-hts ffmpeg sox)
ENCODERS=(pcm_s16le libopus aac libmp3lame flac)

log() { printf 'make_clips: %s\n' "$*" >&2; }
die() { printf 'make_clips: ERROR: %s\n' "$*" >&2; exit 1; }

voice_for() {
  case $1 in
    ru) echo msu_ru_nsh_clunits ;;
    en) echo cmu_us_slt_arctic_hts ;;
    *) die "no voice for language '$1'" ;;
  esac
}

# --------------------------------------------------------------------------
# Packages. dpkg is asked first, so a re-run makes no apt calls at all.
# --------------------------------------------------------------------------
ensure_packages() {
  local p status missing=()
  for p in "${PKGS[@]}"; do
    status=$(dpkg -s "$p" 2>/dev/null | sed -n 's/^Status: //p' || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  [[ ${VOX_SPEECH_NO_INSTALL:-0} == 1 ]] && die "missing packages: ${missing[*]}"
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
    sudo=(sudo -n)
  fi
  log "installing ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}

check_encoders() {
  local list e
  list=$(ffmpeg -hide_banner -loglevel error -encoders </dev/null)
  for e in "${ENCODERS[@]}"; do
    grep -Eq "^ A[^ ]* +$e " <<<"$list" || die "ffmpeg has no '$e' encoder"
  done
}

# --------------------------------------------------------------------------
# Build helpers
# --------------------------------------------------------------------------
BUILT=0
KEPT=0

# fresh OUT DEP... : OUT exists and is newer than every DEP (and no FORCE).
fresh() {
  local out=$1 d
  shift
  [[ $FORCE == 1 ]] && return 1
  [[ -e $out ]] || return 1
  for d in "$@"; do [[ $out -nt $d ]] || return 1; done
}

# tmp path beside OUT, keeping the extension so ffmpeg picks the muxer.
tmp_for() { printf '%s/.tmp-%s-%s' "$(dirname "$1")" "$$" "$(basename "$1")"; }
cleanup() { rm -f "$OUT"/.tmp-$$-* "$RAW"/.tmp-$$-* 2>/dev/null || true; }

commit() { mv -f "$1" "$2"; BUILT=$((BUILT + 1)); }

FF=(nice -n 10 ffmpeg -nostdin -hide_banner -loglevel error -y -threads 1)
FF_OUT=(-map_metadata -1 -fflags +bitexact -flags:a +bitexact)

duration_of() {  # what the container claims
  ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 "$1" </dev/null 2>/dev/null || true
}

decoded_duration_of() {  # what a decoder actually gets, '' when nothing decodes
  local bytes
  bytes=$(ffmpeg -nostdin -v quiet -i "$1" -vn -ac 1 -ar 16000 -f s16le - </dev/null 2>/dev/null | wc -c || true)
  ((bytes > 0)) && awk -v b="$bytes" 'BEGIN { printf "%.3f", b / 32000 }' || true
}

# Copy DST from SRC only when the content differs, so its mtime tracks edits.
sync_copy() {
  local src=$1 dst=$2
  if ! cmp -s "$src" "$dst"; then
    cp "$src" "$dst.tmp.$$" && mv -f "$dst.tmp.$$" "$dst"
  fi
}

# ffmpeg conversion: ffconv SRC DST [ffmpeg output options...]
ffconv() {
  local src=$1 dst=$2
  shift 2
  if fresh "$dst" "$src" "$STAMP"; then KEPT=$((KEPT + 1)); return 0; fi
  local tmp
  tmp=$(tmp_for "$dst")
  "${FF[@]}" -i "$src" -vn "$@" "${FF_OUT[@]}" "$tmp"
  commit "$tmp" "$dst"
}

# --------------------------------------------------------------------------
# Speech synthesis
# --------------------------------------------------------------------------
synth() {  # synth LANG TEXT(cache copy) RAWWAV
  local lang=$1 txt=$2 dst=$3 voice tmp err words dur
  if fresh "$dst" "$txt" "$STAMP"; then KEPT=$((KEPT + 1)); return 0; fi
  voice=$(voice_for "$lang")
  tmp=$(tmp_for "$dst")
  err="$tmp.log"
  # -eval is essential: the default voice depends on which voices are installed.
  # The Russian voice expects UTF-8 text (its lexicon uses utf8explode);
  # KOI8-R input makes it print "LTS_Ruleset ... no rule matches" and write nothing.
  if ! nice -n 10 text2wave -eval "(voice_$voice)" "$txt" -o "$tmp" </dev/null 2>"$err"; then
    cat "$err" >&2
    die "festival failed on $txt"
  fi
  if grep -Eq 'no rule matches|SIOD ERROR|[Ee]rror' "$err"; then
    cat "$err" >&2
    die "festival complained about $txt (text encoding or unknown characters?)"
  fi
  rm -f "$err"
  # Listening-free sanity check: 0.15-1.2 s of audio per word.
  words=$(wc -w <"$txt")
  dur=$(duration_of "$tmp")
  awk -v d="${dur:-0}" -v w="$words" 'BEGIN { exit !(d >= 0.15 * w && d <= 1.2 * w) }' ||
    die "$txt: ${dur:-?} s of audio for $words words; festival misread the text"
  commit "$tmp" "$dst"
  log "synthesised $(basename "$dst" .wav) ($lang, $words words, ${dur%???} s)"
}

# --------------------------------------------------------------------------
# Special clips
# --------------------------------------------------------------------------
make_silence() {
  local dst="$OUT/silence_30s.wav" tmp
  if fresh "$dst" "$STAMP"; then KEPT=$((KEPT + 1)); return 0; fi
  tmp=$(tmp_for "$dst")
  sox -D -R -r 16000 -c 1 -n -b 16 -e signed-integer "$tmp" trim 0 30
  commit "$tmp" "$dst"
}

make_noise() {
  local dst="$OUT/noise_20s.wav" tmp rms gain
  if fresh "$dst" "$STAMP"; then KEPT=$((KEPT + 1)); return 0; fi
  tmp=$(tmp_for "$dst")
  # -R makes sox's noise generator repeatable: measure once, then scale.
  # -D everywhere: sox would otherwise dither, and silence would not be digital.
  rms=$(sox -R -r 16000 -c 1 -n -n synth 20 pinknoise stats 2>&1 | awk '/^RMS lev dB/ { print $4 }')
  gain=$(awk -v t="$NOISE_RMS_DB" -v r="$rms" 'BEGIN { printf "%.2f", t - r }')
  sox -D -R -r 16000 -c 1 -n -b 16 -e signed-integer "$tmp" synth 20 pinknoise gain "$gain"
  commit "$tmp" "$dst"
}

make_truncated() {  # first 30 % of the bytes of an mp3
  local src=$1 dst="$OUT/truncated.mp3" tmp size
  if fresh "$dst" "$src" "$STAMP"; then KEPT=$((KEPT + 1)); return 0; fi
  tmp=$(tmp_for "$dst")
  size=$(stat -c %s "$src")
  head -c $((size * 30 / 100)) "$src" >"$tmp"
  commit "$tmp" "$dst"
}

make_copy() {  # plain copy under a misleading name
  local src=$1 dst=$2 tmp
  if fresh "$dst" "$src" "$STAMP"; then KEPT=$((KEPT + 1)); return 0; fi
  tmp=$(tmp_for "$dst")
  cp "$src" "$tmp"
  commit "$tmp" "$dst"
}

make_empty() {
  local dst="$OUT/empty.wav" tmp
  if [[ $FORCE != 1 && -e $dst && ! -s $dst ]]; then KEPT=$((KEPT + 1)); return 0; fi
  tmp=$(tmp_for "$dst")
  : >"$tmp"
  commit "$tmp" "$dst"
}

make_corrupt() {  # a flac with 4 KiB in the middle overwritten by noise bytes
  local src=$1 dst="$OUT/corrupt.flac" tmp junk size
  if fresh "$dst" "$src" "$STAMP"; then KEPT=$((KEPT + 1)); return 0; fi
  tmp=$(tmp_for "$dst")
  junk="$tmp.junk"
  sox -D -R -r 8000 -c 1 -n -t raw -b 8 -e unsigned-integer "$junk" synth 1 whitenoise
  size=$(stat -c %s "$src")
  cp "$src" "$tmp"
  dd if="$junk" of="$tmp" bs=4096 count=1 seek=$((size / 2)) oflag=seek_bytes conv=notrunc status=none
  rm -f "$junk"
  commit "$tmp" "$dst"
}

# --------------------------------------------------------------------------
# 10-minute benchmark clip
# --------------------------------------------------------------------------
make_long() {  # make_long ID...  (Russian clip ids, 16 kHz mono wavs in $OUT)
  local ids=("$@") n=$# dst="$OUT/ru_long_10min.wav" ref="$OUT/ru_long_10min.txt"
  local deps=() id
  for id in "${ids[@]}"; do deps+=("$OUT/$id.wav" "$OUT/$id.txt"); done
  if fresh "$dst" "${deps[@]}" "$STAMP" && fresh "$ref" "${deps[@]}" "$STAMP"; then
    KEPT=$((KEPT + 2)); return 0
  fi
  local total_target=$((LONG_SECONDS * LONG_RATE)) total=0 pass=0 k=0 i idx stride=5
  local parts=() tmpref tmpcat tmp p ps samples pause_file
  tmpref=$(tmp_for "$ref")
  tmpcat="$RAW/.tmp-$$-concat.wav"
  tmp=$(tmp_for "$dst")
  : >"$tmpref"
  # Pass p walks the clips starting at clip p with a stride of 5 (a
  # permutation whenever 5 does not divide the clip count), so each pass has
  # a different, fixed order. Pauses cycle through PAUSES.
  ((n % 5 == 0)) && stride=1
  # Whole clips only: the tail is padded with silence to exactly 10 minutes.
  while :; do
    for ((i = 0; i < n; i++)); do
      idx=$(((pass + i * stride) % n))
      id=${ids[$idx]}
      samples=$(soxi -s "$OUT/$id.wav")
      p=${PAUSES[$((k % ${#PAUSES[@]}))]}
      ps=$(awk -v p="$p" -v r="$LONG_RATE" 'BEGIN { printf "%d", p * r + 0.5 }')
      ((k == 0)) && ps=0
      ((total + ps + samples <= total_target)) || break 2
      if ((ps > 0)); then
        pause_file="$RAW/pause_${p}s.wav"
        fresh "$pause_file" "$STAMP" ||
          sox -D -r "$LONG_RATE" -c 1 -n -b 16 -e signed-integer "$pause_file" trim 0 "${ps}s"
        parts+=("$pause_file")
      fi
      parts+=("$OUT/$id.wav")
      printf '%s\n' "$(<"$OUT/$id.txt")" >>"$tmpref"
      total=$((total + ps + samples))
      k=$((k + 1))
    done
    pass=$((pass + 1))
  done
  ((k > 0)) || die "no Russian clips for the long clip"
  nice -n 10 sox "${parts[@]}" "$tmpcat"
  nice -n 10 sox "$tmpcat" "$tmp" pad 0 "$((total_target - total))s"
  rm -f "$tmpcat"
  [[ $(soxi -s "$tmp") == "$total_target" ]] || die "long clip is not exactly ${LONG_SECONDS}s"
  commit "$tmpref" "$ref"
  commit "$tmp" "$dst"
  log "long clip: $k utterances, $(awk -v t="$total" -v r="$LONG_RATE" 'BEGIN { printf "%.1f", t / r }') s of speech and pauses, padded to ${LONG_SECONDS} s"
}

# --------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------
MANIFEST_ROWS=()   # "file<TAB>language<TAB>reference<TAB>kind"

add_row() { MANIFEST_ROWS+=("$1"$'\t'"$2"$'\t'"$3"$'\t'"$4"); }

# probe FILE KIND -> "duration<TAB>codec<TAB>rate<TAB>channels", cached in raw/probe/
probe() {
  local file=$1 kind=$2 cache="$RAW/probe/$1.tsv" dur codec rate ch info
  if fresh "$cache" "$OUT/$file" "$STAMP"; then cat "$cache"; return 0; fi
  info=$(ffprobe -v error -select_streams a:0 \
    -show_entries stream=codec_name,sample_rate,channels:format=duration \
    -of default=nw=1:nk=1 "$OUT/$file" </dev/null 2>/dev/null | paste -sd' ' || true)
  read -r codec rate ch dur <<<"$info" || true
  # Broken clips: the decodable length (truncated.mp3's header claims more).
  case $kind in
    speech | long) ;;
    *) dur=$(decoded_duration_of "$OUT/$file") ;;
  esac
  [[ -n ${dur:-} && $dur != N/A ]] && dur=$(awk -v d="$dur" 'BEGIN { printf "%.3f", d }') || dur=-
  mkdir -p "$RAW/probe"
  printf '%s\t%s\t%s\t%s\n' "$dur" "${codec:--}" "${rate:--}" "${ch:--}" | tee "$cache.tmp.$$"
  mv -f "$cache.tmp.$$" "$cache"
}

write_manifest() {
  local dst="$OUT/manifest.tsv" tmp row file lang ref kind dur codec rate ch
  # Rewritten when anything was built or the list of clips changed.
  if [[ $FORCE != 1 && $BUILT == 0 && -e $dst && $dst -nt $STAMP ]] &&
    [[ $(tail -n +2 "$dst" | cut -f1) == "$(printf '%s\n' "${MANIFEST_ROWS[@]}" | cut -f1)" ]]; then
    KEPT=$((KEPT + 1)); return 0
  fi
  tmp=$(tmp_for "$dst")
  printf 'file\tlanguage\tformat\tduration_s\treference\tcodec\tsample_rate\tchannels\tkind\n' >"$tmp"
  for row in "${MANIFEST_ROWS[@]}"; do
    IFS=$'\t' read -r file lang ref kind <<<"$row"
    IFS=$'\t' read -r dur codec rate ch < <(probe "$file" "$kind")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$file" "$lang" "${file##*.}" "$dur" "$ref" \
      "$codec" "$rate" "$ch" "$kind" >>"$tmp"
  done
  mv -f "$tmp" "$dst"
  BUILT=$((BUILT + 1))
}

# --------------------------------------------------------------------------
main() {
  mkdir -p "$RAW"
  exec 9>"$OUT/.lock"
  flock -w 1800 9 || die "another make_clips.sh holds $OUT/.lock"
  trap cleanup EXIT

  ensure_packages
  check_encoders

  # Any change to this script invalidates every output (content-compared).
  STAMP="$OUT/.recipe"
  local sum
  sum=$(sha256sum "$SELF" | cut -d' ' -f1)
  [[ -e $STAMP && $(cat "$STAMP") == "$sum" ]] || printf '%s\n' "$sum" >"$STAMP"

  local txt id lang ntexts=0 ru_ids=()
  shopt -s nullglob
  for txt in "$TEXTS"/ru_*.txt "$TEXTS"/en_*.txt; do
    id=$(basename "$txt" .txt)
    lang=${id%%_*}
    ntexts=$((ntexts + 1))
    [[ $lang == ru ]] && ru_ids+=("$id")
    sync_copy "$txt" "$OUT/$id.txt"
    synth "$lang" "$OUT/$id.txt" "$RAW/$id.wav"

    local w16="$OUT/$id.wav"
    ffconv "$RAW/$id.wav" "$w16" -ar 16000 -ac 1 -c:a pcm_s16le
    ffconv "$w16" "$OUT/$id.ogg" -c:a libopus -b:a 32k -application voip -f ogg
    # WebM as a browser's MediaRecorder writes it: 48 kHz Opus in its default (audio)
    # mode, CELT and hybrid frames; the .ogg above is SILK (voip), as voice apps write.
    ffconv "$w16" "$OUT/$id.webm" -ar 48000 -c:a libopus -b:a 48k -f webm
    ffconv "$w16" "$OUT/$id.mp3" -ar 44100 -c:a libmp3lame -q:a 5
    ffconv "$w16" "$OUT/$id.m4a" -ar 48000 -c:a aac -b:a 64k -movflags +faststart
    ffconv "$w16" "$OUT/$id.flac" -c:a flac -compression_level 5
    ffconv "$w16" "$OUT/${id}_44k_stereo.wav" -ar 44100 -ac 2 -c:a pcm_s16le

    add_row "$id.wav" "$lang" "$id.txt" speech
    add_row "$id.ogg" "$lang" "$id.txt" speech
    add_row "$id.webm" "$lang" "$id.txt" speech
    add_row "$id.mp3" "$lang" "$id.txt" speech
    add_row "$id.m4a" "$lang" "$id.txt" speech
    add_row "$id.flac" "$lang" "$id.txt" speech
    add_row "${id}_44k_stereo.wav" "$lang" "$id.txt" speech
  done
  ((ntexts > 0)) || die "no texts in $TEXTS"
  ((${#ru_ids[@]} >= 3)) || die "need at least three Russian texts"

  make_silence
  make_noise
  make_truncated "$OUT/${ru_ids[0]}.mp3"
  make_copy "$OUT/${ru_ids[4]:-${ru_ids[0]}}.txt" "$OUT/not_audio.ogg"
  make_empty
  make_copy "$OUT/${ru_ids[1]}.mp3" "$OUT/lying_header.wav"
  make_corrupt "$OUT/${ru_ids[2]}.flac"
  add_row silence_30s.wav - - silence
  add_row noise_20s.wav - - noise
  add_row truncated.mp3 ru - truncated
  add_row not_audio.ogg - - not_audio
  add_row empty.wav - - empty
  add_row lying_header.wav ru - lying_header
  add_row corrupt.flac ru - corrupt

  make_long "${ru_ids[@]}"
  ffconv "$OUT/ru_long_10min.wav" "$OUT/ru_long_10min.ogg" -c:a libopus -b:a 32k -application voip -f ogg
  ffconv "$OUT/ru_long_10min.wav" "$OUT/ru_long_10min.webm" -ar 48000 -c:a libopus -b:a 48k -f webm
  add_row ru_long_10min.wav ru ru_long_10min.txt long
  add_row ru_long_10min.ogg ru ru_long_10min.txt long
  add_row ru_long_10min.webm ru ru_long_10min.txt long

  write_manifest

  local elapsed
  elapsed=$(awk -v s="$START_TS" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  printf 'make_clips: %d texts, %d clips in %s (built %d, up to date %d) in %s s; manifest %s\n' \
    "$ntexts" "${#MANIFEST_ROWS[@]}" "$OUT" "$BUILT" "$KEPT" "$elapsed" "$OUT/manifest.tsv"
}

main "$@"
