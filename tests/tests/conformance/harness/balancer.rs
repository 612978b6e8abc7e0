//! An L4 load balancer in front of a gateway's replicas: every new TCP connection goes to
//! the next replica, round robin (skipping one that refuses), as behind a real one. The
//! clustered run of the suite (`CLAWPLANE_TEST_REPLICAS`) points every client that opens its
//! own connection (HTTP, WebSocket, CLI, raw gRPC channels) at it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};

pub struct Balancer {
    pub addr: SocketAddr,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Balancer {
    /// Listens on a free 127.0.0.1 port; no backends yet (connections are dropped). It
    /// runs on a thread of its own, so a test that blocks its runtime (a synchronous CLI
    /// call) does not stall the connections it makes.
    pub fn start() -> Balancer {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("harness: bind the balancer");
        listener
            .set_nonblocking(true)
            .expect("nonblocking balancer socket");
        let addr = listener.local_addr().expect("balancer address");
        let backends: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let list = backends.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("harness-balancer".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("balancer runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("balancer listener");
                    let next = AtomicUsize::new(0);
                    let accept = async {
                        while let Ok((client, _)) = listener.accept().await {
                            let targets = list.lock().unwrap().clone();
                            let first = next.fetch_add(1, Ordering::Relaxed);
                            tokio::spawn(forward(client, targets, first));
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
            })
            .expect("spawn the balancer thread");
        Balancer {
            addr,
            backends,
            stop: Some(stop),
        }
    }

    /// The replicas' current addresses (after a start, their ports change).
    pub fn set_backends(&self, addrs: Vec<SocketAddr>) {
        *self.backends.lock().unwrap() = addrs;
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Connects `client` to the first backend from `first` on that accepts, and copies both ways
/// until either side closes.
async fn forward(mut client: TcpStream, targets: Vec<SocketAddr>, first: usize) {
    let _ = client.set_nodelay(true);
    for k in 0..targets.len() {
        let target = targets[(first + k) % targets.len()];
        if let Ok(mut upstream) = TcpStream::connect(target).await {
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            return;
        }
    }
}
