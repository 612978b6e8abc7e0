//! The auto-resuming watch against a scripted in-process EventService: it must resume from
//! the last seq after SUBSCRIBER_LAGGED, UNAVAILABLE and a closed stream, drop duplicates,
//! and surface CURSOR_EXPIRED / UNAUTHENTICATED as errors.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use clawplane_sdk::pb::event_service_server::{EventService, EventServiceServer};
use clawplane_sdk::pb::event_service_watch_response::Frame;
use clawplane_sdk::pb::{self, EventServiceWatchRequest, EventServiceWatchResponse};
use clawplane_sdk::{Client, Error, WatchItem};
use futures::StreamExt;
use futures::stream::BoxStream;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

type Script = VecDeque<Result<Vec<Result<Frame, Status>>, Status>>;

#[derive(Clone, Default)]
struct Fake {
    /// One entry per expected Watch call: a call-level error, or the frames to stream.
    script: Arc<Mutex<Script>>,
    /// The `afterSeq` of every Watch call, in order.
    calls: Arc<Mutex<Vec<u64>>>,
    /// The bearer token of every call.
    tokens: Arc<Mutex<Vec<String>>>,
}

fn status(code: Code, reason: &str, meta: &[(&str, &str)]) -> Status {
    let md: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Status::with_error_details(
        code,
        reason.to_lowercase(),
        ErrorDetails::with_error_info(reason, "clawplane.dev", md),
    )
}

fn ev(seq: u64) -> Result<Frame, Status> {
    Ok(Frame::Event(pb::Event {
        seq,
        run_id: format!("r{seq}"),
        ..Default::default()
    }))
}

fn progress(seq: u64) -> Result<Frame, Status> {
    Ok(Frame::Progress(pb::Progress { seq }))
}

#[tonic::async_trait]
impl EventService for Fake {
    type WatchStream = BoxStream<'static, Result<EventServiceWatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<EventServiceWatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        self.tokens.lock().unwrap().push(token);
        self.calls.lock().unwrap().push(request.get_ref().after_seq);
        let next = self.script.lock().unwrap().pop_front();
        match next {
            None => Err(Status::internal("script exhausted")),
            Some(Err(s)) => Err(s),
            Some(Ok(frames)) => {
                let items = frames
                    .into_iter()
                    .map(|f| f.map(|frame| EventServiceWatchResponse { frame: Some(frame) }));
                Ok(Response::new(futures::stream::iter(items).boxed()))
            }
        }
    }
}

async fn serve(fake: Fake) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(EventServiceServer::new(fake))
            .serve_with_incoming(incoming)
            .await;
    });
    format!("http://{addr}")
}

fn seq_of(item: &Result<WatchItem, Error>) -> String {
    match item {
        Ok(WatchItem::Event(e)) => format!("E{}", e.seq),
        Ok(WatchItem::Progress(p)) => format!("P{}", p.seq),
        Err(e) => format!("ERR {:?} {:?}", e.code(), e.reason()),
    }
}

#[tokio::test]
async fn resumes_without_gaps_or_duplicates() {
    let fake = Fake::default();
    {
        let mut s = fake.script.lock().unwrap();
        s.push_back(Ok(vec![
            ev(1),
            ev(2),
            ev(3),
            Err(status(
                Code::Aborted,
                "SUBSCRIBER_LAGGED",
                &[("lastSeq", "3")],
            )),
        ]));
        s.push_back(Ok(vec![
            ev(3),
            ev(4),
            Err(Status::unavailable("restarting")),
        ]));
        s.push_back(Ok(vec![progress(10)])); // then the stream closes
        s.push_back(Ok(vec![ev(11)]));
        s.push_back(Err(status(
            Code::OutOfRange,
            "CURSOR_EXPIRED",
            &[("oldestSeq", "50")],
        )));
    }
    let url = serve(fake.clone()).await;
    let client = Client::connect(&url, Some("sekrit".into()))
        .await
        .expect("connect");
    let mut watch = client.watch(0, pb::EventFilter::default());
    let mut got = Vec::new();
    let mut last_err = None;
    let run = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(item) = watch.next().await {
            got.push(seq_of(&item));
            if let Err(e) = item {
                last_err = Some(e);
            }
        }
    })
    .await;
    assert!(run.is_ok(), "watch did not finish; got {got:?}");
    assert_eq!(
        got,
        vec![
            "E1",
            "E2",
            "E3",
            "E4",
            "P10",
            "E11",
            "ERR OutOfRange Some(\"CURSOR_EXPIRED\")"
        ]
    );
    match last_err {
        Some(Error::CursorExpired {
            after_seq,
            oldest_seq,
            ..
        }) => {
            assert_eq!(after_seq, 11);
            assert_eq!(oldest_seq, 50);
        }
        other => panic!("expected CursorExpired, got {other:?}"),
    }
    assert_eq!(*fake.calls.lock().unwrap(), vec![0, 3, 4, 10, 11]);
    assert!(
        fake.tokens
            .lock()
            .unwrap()
            .iter()
            .all(|t| t == "Bearer sekrit")
    );
    assert_eq!(watch.last_seq(), 11);
}

#[tokio::test]
async fn unauthenticated_ends_the_watch() {
    let fake = Fake::default();
    fake.script
        .lock()
        .unwrap()
        .push_back(Err(status(Code::Unauthenticated, "TOKEN_INVALID", &[])));
    let url = serve(fake.clone()).await;
    let client = Client::connect(&url, Some("wrong".into()))
        .await
        .expect("connect");
    let items: Vec<_> = client.watch(5, pb::EventFilter::default()).collect().await;
    assert_eq!(items.len(), 1);
    let err = items
        .into_iter()
        .next()
        .and_then(|r| r.err())
        .expect("an error");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.reason().as_deref(), Some("TOKEN_INVALID"));
    assert!(err.hint().unwrap_or_default().contains("--token"));
    assert!(
        err.status()
            .is_some_and(|s| s.get_error_details().error_info().is_some())
    );
    assert_eq!(*fake.calls.lock().unwrap(), vec![5]);
}

#[tokio::test]
async fn connection_refused_is_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let err = Client::connect(&format!("http://{addr}"), None)
        .await
        .expect_err("nothing listens");
    match &err {
        Error::Connect { refused, url, .. } => {
            assert!(*refused, "{err:?}");
            assert_eq!(url, &format!("http://{addr}"));
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    assert!(err.is_unreachable());
    assert!(err.to_string().contains("not reachable"));
    assert!(err.hint().unwrap_or_default().contains("clawplane serve"));
}
