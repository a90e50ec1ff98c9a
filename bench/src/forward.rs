//! The two minimal forwarders the relay is compared with, each run as its own process
//! (`dialbridge-bench forward …`) so that its CPU is measured alone: each listening port
//! forwards every datagram to one fixed destination, and does nothing else.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::rtp::Epoll;

#[derive(Clone, Copy, ValueEnum)]
pub enum Kind {
    /// One tokio task per socket on the multi-threaded runtime (as dialbridge runs).
    Tokio,
    /// One thread, one level-triggered epoll set, recv and send.
    Epoll,
}

#[derive(Args)]
pub struct ForwardArgs {
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Lines of "listen_port destination_port" (both on 127.0.0.1).
    #[arg(long)]
    pub pairs: PathBuf,
}

fn pairs(args: &ForwardArgs) -> anyhow::Result<Vec<(UdpSocket, SocketAddr)>> {
    let text = std::fs::read_to_string(&args.pairs)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut ports = line.split_whitespace().map(str::parse::<u16>);
            let (Some(Ok(listen)), Some(Ok(destination))) = (ports.next(), ports.next()) else {
                anyhow::bail!("bad pair line {line:?}");
            };
            let socket = UdpSocket::bind(("127.0.0.1", listen)).with_context(|| format!("bind {listen}"))?;
            socket.set_nonblocking(true)?;
            Ok((socket, SocketAddr::from(([127, 0, 0, 1], destination))))
        })
        .collect()
}

pub fn run(args: &ForwardArgs) -> anyhow::Result<()> {
    let sockets = pairs(args)?;
    println!("ready");
    match args.kind {
        Kind::Epoll => epoll_loop(&sockets),
        Kind::Tokio => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(tokio_tasks(sockets)),
    }
}

fn epoll_loop(sockets: &[(UdpSocket, SocketAddr)]) -> anyhow::Result<()> {
    let mut epoll = Epoll::new()?;
    for (index, (socket, _)) in sockets.iter().enumerate() {
        epoll.add(socket.as_raw_fd(), index as u64)?;
    }
    let mut buffer = [0u8; 2048];
    let mut ready = Vec::new();
    loop {
        epoll.wait(&mut ready, -1)?;
        for token in &ready {
            let (socket, destination) = &sockets[*token as usize];
            while let Ok(len) = socket.recv(&mut buffer) {
                let _ = socket.send_to(&buffer[..len], destination);
            }
        }
    }
}

async fn tokio_tasks(sockets: Vec<(UdpSocket, SocketAddr)>) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (socket, destination) in sockets {
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        tasks.spawn(async move {
            let mut buffer = [0u8; 2048];
            while let Ok(len) = socket.recv(&mut buffer).await {
                let _ = socket.send_to(&buffer[..len], destination).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}
