//! The web console's page and files: served without a key (they hold no data), with a
//! policy that allows no inline code, revalidated by entity tag.

use axum::http::{Method, header};

use crate::App;

#[tokio::test]
async fn the_console_is_served_with_a_strict_policy_and_revalidates() {
    let app = App::new().await;

    let page = app.call(Method::GET, "/", None, None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type(), "text/html; charset=utf-8");
    let html = page.text();
    assert!(html.contains(r#"<script type="module" src="/console/app.js"></script>"#));
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // Uploads and playback go to the bucket's origin, and only there.
    let moto = vox_tests::aws::moto_url();
    assert!(
        csp.contains(&format!("connect-src 'self' {moto};")),
        "{csp}"
    );
    assert!(
        csp.contains(&format!("media-src 'self' blob: {moto};")),
        "{csp}"
    );
    assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(page.headers[header::REFERRER_POLICY], "no-referrer");

    for (path, kind) in [
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/app.css", "text/css; charset=utf-8"),
    ] {
        let file = app.call(Method::GET, path, None, None).await;
        assert_eq!(file.status, 200, "{path}");
        assert_eq!(file.content_type(), kind);
        assert!(!file.body.is_empty());
        let etag = file.headers[header::ETAG].clone();
        assert_eq!(file.headers[header::CACHE_CONTROL], "no-cache");
        // Unchanged: 304 with no body.
        let request = axum::http::Request::builder()
            .uri(path)
            .header(header::IF_NONE_MATCH, etag.clone())
            .body(axum::body::Body::empty())
            .unwrap();
        let again = app.send(request).await;
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
        assert_eq!(again.headers[header::ETAG], etag);
    }

    app.call(Method::GET, "/console/secrets.txt", None, None)
        .await
        .problem(404, "not-found");
    // The page adds no way around the API's keys: data still needs one.
    app.call(Method::GET, "/recordings", None, None)
        .await
        .problem(401, "unauthorized");
}
