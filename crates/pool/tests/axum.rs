//! The pool as an axum route service: `HandleErrorLayer` turns a job's error into a response,
//! and the pool's backpressure and outcomes stay as they are. Requests go through
//! `tower::ServiceExt::oneshot` on the router (no socket).
#![cfg(not(loom))]

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::http::{Request, StatusCode};
use tower::{ServiceBuilder, ServiceExt};
use weft_pool::{JobError, Outcome, Pool};

#[tokio::test]
async fn a_pool_serves_an_axum_route_and_its_errors_become_responses() {
    let pool =
        Pool::builder()
            .workers(2)
            .build(tower::service_fn(|req: Request<Body>| async move {
                match req.uri().path() {
                    "/boom" => panic!("handler bug"),
                    path => Ok::<_, Infallible>(format!("ran {path}")),
                }
            }));
    let svc =
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(
                |e: JobError<Infallible>| async move {
                    (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                },
            ))
            .service(pool.clone());
    let app = Router::new().route_service("/{*path}", svc);

    let ok = app
        .clone()
        .oneshot(Request::get("/hello").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(ok.status(), StatusCode::OK);
    let body = axum::body::to_bytes(ok.into_body(), 1024)
        .await
        .expect("body");
    assert_eq!(&body[..], b"ran /hello");

    let boom = app
        .oneshot(Request::get("/boom").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(boom.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = axum::body::to_bytes(boom.into_body(), 1024)
        .await
        .expect("body");
    assert_eq!(&body[..], b"job panicked: handler bug");

    let stats = pool.stats();
    assert_eq!(stats.count(Outcome::Completed), 1);
    assert_eq!(stats.count(Outcome::Panicked), 1);
    assert_eq!(stats.workers, 2, "the panic did not cost a worker");
}
