use axum::body::Body;
use axum::http::{Method, Request, header};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use serde_json::json;

use crate::App;

#[tokio::test]
async fn a_request_without_a_key_is_401_and_says_how_to_authenticate() {
    let app = App::new().await;

    let answer = app.call(Method::GET, "/scenarios", None, None).await;

    let body = answer.problem(401, "unauthorized");
    assert!(body["detail"].as_str().unwrap().contains("X-Api-Key"));
    let challenge = answer.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
}

#[tokio::test]
async fn an_unknown_key_or_another_scheme_is_401() {
    let app = App::new().await;

    let unknown = app
        .get(
            "/scenarios",
            "vox_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .await;
    let basic = app
        .send(
            Request::get("/scenarios")
                .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
                .body(Body::empty())
                .unwrap(),
        )
        .await;

    unknown.problem(401, "unauthorized");
    basic.problem(401, "unauthorized");
}

#[tokio::test]
async fn the_x_api_key_header_works_like_a_bearer_token() {
    let app = App::new().await;

    let answer = app
        .send(
            Request::get("/scenarios")
                .header("x-api-key", &app.analyst)
                .body(Body::empty())
                .unwrap(),
        )
        .await;

    assert_eq!(answer.status, 200, "{}", answer.text());
    let conn = app.db.pool.get().await.unwrap();
    let used: i64 = conn
        .query_one(
            "SELECT count(*) FROM api_key WHERE last_used_at IS NOT NULL AND name = 'analyst'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(used, 1);
}

/// (method, path, body) of a request each role may or may not make.
fn route(
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (Method, String, Option<serde_json::Value>) {
    (method, path.to_owned(), body)
}

#[tokio::test]
async fn each_role_is_refused_with_403_exactly_where_it_lacks_permission() {
    let app = App::new().await;
    let recording = json!({
        "file_name": "a.ogg", "content_type": "audio/ogg", "size_bytes": 1000,
        "scenario": "design", "building": "hotel"
    });
    let question = json!({"question": "Что говорят о цене?"});
    let routes = [
        route(Method::GET, "/scenarios", None),
        route(Method::POST, "/recordings", Some(recording)),
        route(Method::GET, "/recordings", None),
        route(Method::GET, "/audits?scenario=design", None),
        route(Method::GET, "/transcriptions/1", None),
        route(Method::POST, "/search", Some(json!({"query": "цена"}))),
        route(Method::POST, "/answers", Some(question.clone())),
        route(Method::POST, "/questions", Some(question)),
        route(Method::GET, "/index", None),
        route(Method::GET, "/keys", None),
        route(
            Method::POST,
            "/keys",
            Some(json!({"name": "ci", "role": "analyst"})),
        ),
    ];
    // What each role may do, in the order of `routes`.
    let allowed = [
        ("admin", &app.admin, [true; 11]),
        (
            "analyst",
            &app.analyst,
            [
                true, false, true, true, true, true, true, true, true, false, false,
            ],
        ),
        (
            "uploader",
            &app.uploader,
            [
                true, true, true, false, false, false, false, false, false, false, false,
            ],
        ),
    ];

    for (role, key, may) in allowed {
        for ((method, path, body), may) in routes.iter().zip(may) {
            let answer = app
                .call(method.clone(), path, Some(key), body.clone())
                .await;
            if may {
                assert!(
                    ![401, 403].contains(&answer.status.as_u16()),
                    "{role} was refused {method} {path}: {}",
                    answer.text()
                );
            } else {
                let body = answer.problem(403, "forbidden");
                assert!(body["detail"].as_str().unwrap().contains(role), "{body}");
            }
        }
    }
}

#[tokio::test]
async fn admins_create_list_and_revoke_keys_and_a_revoked_key_is_401() {
    let app = App::new().await;

    let created = app
        .post(
            "/keys",
            &app.admin,
            json!({"name": "bot", "role": "uploader"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("vox_") && key.len() == 47, "{key}");
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["role"], "uploader");
    let id = created["id"].as_i64().unwrap();

    let listed = app.get("/keys", &app.admin).await.json();
    let bot = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap();
    assert_eq!(bot["name"], "bot");
    assert!(bot.get("key").is_none(), "a listing must never show a key");
    assert_eq!(app.get("/recordings", &key).await.status, 200);

    let revoked = app
        .call(
            Method::DELETE,
            &format!("/keys/{id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, 200);
    assert!(revoked.json()["revoked_at"].is_string());
    app.get("/recordings", &key)
        .await
        .problem(401, "unauthorized");

    let conn = app.db.pool.get().await.unwrap();
    let stored: Vec<u8> = conn
        .query_one(
            "SELECT key_sha256 FROM api_key WHERE api_key_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, api::auth::key_digest(&key).to_vec());
}

#[tokio::test]
async fn key_requests_are_validated_and_unknown_keys_are_404() {
    let app = App::new().await;

    let bad_role = app
        .post("/keys", &app.admin, json!({"name": "x", "role": "root"}))
        .await;
    let blank = app
        .post("/keys", &app.admin, json!({"name": "  ", "role": "admin"}))
        .await;
    let missing = app
        .call(Method::DELETE, "/keys/999999", Some(&app.admin), None)
        .await;

    assert_eq!(bad_role.problem(400, "validation")["field"], "role");
    assert_eq!(blank.problem(400, "validation")["field"], "name");
    missing.problem(404, "not-found");
}

fn with_claims(path: &str, claims: &[(&str, &str)]) -> Request<Body> {
    let mut context = ApiGatewayV2httpRequestContext::default();
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims = claims
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    authorizer.jwt = Some(jwt);
    context.authorizer = Some(authorizer);
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(RequestContext::ApiGatewayV2(context));
    request
}

#[tokio::test]
async fn behind_api_gateway_a_jwt_role_claim_is_accepted_without_a_key() {
    let app = App::new().await;

    let analyst = app
        .send(with_claims(
            "/audits?scenario=design",
            &[("sub", "user-1"), ("custom:role", "analyst")],
        ))
        .await;
    let analyst_keys = app
        .send(with_claims(
            "/keys",
            &[("sub", "user-1"), ("role", "analyst")],
        ))
        .await;
    let no_role = app
        .send(with_claims("/scenarios", &[("sub", "user-2")]))
        .await;

    assert_eq!(analyst.status, 200, "{}", analyst.text());
    analyst_keys.problem(403, "forbidden");
    no_role.problem(403, "forbidden");
}

/// An HTTP API (payload 2.0) event as API Gateway sends it after its JWT authorizer
/// verified the token.
fn http_api_event(method: &str, path: &str, claims: serde_json::Value) -> String {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"accept": "application/json", "host": "id.execute-api.eu-central-1.amazonaws.com"},
        "requestContext": {
            "routeKey": "$default",
            "accountId": "123456789012",
            "stage": "$default",
            "requestId": "req-1",
            "authorizer": {"jwt": {"claims": claims, "scopes": []}},
            "apiId": "id",
            "domainName": "id.execute-api.eu-central-1.amazonaws.com",
            "domainPrefix": "id",
            "time": "29/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_946_400_000_i64,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "test"
            }
        },
        "isBase64Encoded": false
    })
    .to_string()
}

#[tokio::test]
async fn a_lambda_event_from_api_gateway_reaches_the_router_with_its_token_role() {
    use tower::ServiceExt;
    let app = App::new().await;
    let claims = json!({"sub": "user-7", "custom:role": "uploader"});

    let call = |method: &str, path: &str| {
        let request =
            lambda_http::request::from_str(&http_api_event(method, path, claims.clone())).unwrap();
        app.router.clone().oneshot(request)
    };
    let scenarios = call("GET", "/scenarios").await.unwrap();
    let keys = call("GET", "/keys").await.unwrap();

    assert_eq!(scenarios.status(), 200);
    let body = axum::body::to_bytes(scenarios.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body[0]["id"], "design");
    assert_eq!(keys.status(), 403);
}

/// The API Gateway fixtures of `infra/local/events/` (for `cargo lambda invoke api
/// --data-file ...`) are real events the function answers.
#[tokio::test]
async fn the_api_gateway_event_fixtures_are_answered() {
    use tower::ServiceExt;
    let app = App::with_search().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/local/events");
    let mut seen = 0;
    for (name, status) in [
        ("api-get-scenarios.json", 200),
        ("api-list-audits.json", 200),
        ("api-post-search.json", 200),
        ("api-post-answer.json", 200),
    ] {
        let event = std::fs::read_to_string(dir.join(name)).unwrap();
        let request = lambda_http::request::from_str(&event)
            .unwrap_or_else(|e| panic!("{name} is not an API Gateway event: {e}"));
        let response = app.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), status, "{name}");
        assert_eq!(response.headers()["x-request-id"], "fixture-1", "{name}");
        seen += 1;
    }
    assert_eq!(seen, 4);
}
