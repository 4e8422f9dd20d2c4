//! A TCP proxy that can be cut, so tests can take a shared server (the
//! PostgreSQL everyone uses) "down" for one service without touching it.
//!
//! The service is pointed at the proxy; the proxy forwards to the real
//! server. Cutting it either resets every connection and every new one (a
//! server that stopped, or a firewall that rejects), or keeps every
//! connection open and forwards nothing (a network that drops packets:
//! connects and queries hang). Restoring it lets new connections through
//! again; connections that lived through a cut are closed, as a real
//! network partition would leave them unusable.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::PoisonError;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyState {
    /// Forwards everything.
    Open,
    /// Resets every open connection and every new one at once.
    Reset,
    /// Forwards nothing and answers nothing: connections stay open, silent.
    Blackhole,
}

/// A cuttable TCP proxy on a free loopback port.
pub struct TcpProxy {
    addr: SocketAddr,
    state: watch::Sender<ProxyState>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl TcpProxy {
    /// Starts forwarding to `target` (`host:port`).
    pub async fn start(target: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (state, _) = watch::channel(ProxyState::Open);
        let task = tokio::spawn(accept(listener, target.to_owned(), state.clone()));
        Ok(Self {
            addr,
            state,
            task: Mutex::new(Some(task)),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Resets every open connection and refuses new ones (with a reset).
    pub fn reset(&self) {
        self.set(ProxyState::Reset);
    }

    /// Stops forwarding: open connections and new ones hang, silent.
    pub fn blackhole(&self) {
        self.set(ProxyState::Blackhole);
    }

    /// Forwards new connections again (connections held through a cut are closed).
    pub fn restore(&self) {
        self.set(ProxyState::Open);
    }

    // Only a real change wakes the connections: a forwarding connection
    // woken for nothing would drop the bytes in its copy buffers.
    fn set(&self, new: ProxyState) {
        self.state.send_if_modified(|s| {
            let changed = *s != new;
            *s = new;
            changed
        });
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

async fn accept(listener: TcpListener, target: String, state: watch::Sender<ProxyState>) {
    // Connections live in this task's JoinSet, so dropping the proxy ends them all.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        connections.spawn(forward(client, target.clone(), state.subscribe()));
        while connections.try_join_next().is_some() {}
    }
}

/// Closes a connection with a reset rather than an orderly close.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn forward(mut client: TcpStream, target: String, mut state: watch::Receiver<ProxyState>) {
    let mut server: Option<TcpStream> = None;
    loop {
        let now = *state.borrow_and_update();
        match now {
            ProxyState::Open => {
                let upstream = match server.as_mut() {
                    Some(s) => s,
                    None => match TcpStream::connect(&target).await {
                        Ok(s) => server.insert(s),
                        Err(_) => return reset(client),
                    },
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, upstream) => return,
                    changed = state.changed() => if changed.is_err() { return },
                }
            }
            ProxyState::Reset => {
                if let Some(s) = server.take() {
                    reset(s);
                }
                return reset(client);
            }
            ProxyState::Blackhole => {
                // Hold both ends, reading and writing nothing, until the
                // state changes; what was lost meanwhile leaves the
                // connection broken, so it is then reset.
                let _ = state.changed().await;
                if let Some(s) = server.take() {
                    reset(s);
                }
                return reset(client);
            }
        }
    }
}
