//! The RTP generator and sink of the concurrency scenario: every stream sends 50 packets/s of
//! 20 ms G.711 (172-byte RTP packets) from its own socket, spread evenly over each 20 ms; the
//! sink counts what arrives per stream (the SSRC is the stream's index). SIPp cannot source or
//! count this much RTP on two cores, hence this small hand-written tool.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

const PAYLOAD_BYTES: usize = 160;
const PACKETS_PER_SECOND: u64 = 50;

/// One direction of one call leg: packets leave `socket` for `destination`.
pub struct Stream {
    pub socket: UdpSocket,
    pub destination: SocketAddr,
}

#[derive(Default, Clone, Copy)]
pub struct Counts {
    pub sent: u64,
    pub received: u64,
    /// Streams that lost at least one packet.
    pub streams_with_loss: usize,
}

impl Counts {
    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        (self.sent.saturating_sub(self.received)) as f64 * 100.0 / self.sent as f64
    }
}

/// Binds `count` loopback sockets on consecutive ports from `first_port`.
pub fn bind_range(first_port: u16, count: usize) -> anyhow::Result<Vec<UdpSocket>> {
    (0..count)
        .map(|i| {
            let port = first_port + u16::try_from(i)?;
            let socket = UdpSocket::bind(("127.0.0.1", port)).with_context(|| format!("bind 127.0.0.1:{port}"))?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .collect()
}

/// Sends every stream for `duration`, then waits a little for packets still in flight, and
/// counts. Packets already queued on the sockets are discarded first.
pub fn run(streams: &[Stream], duration: Duration) -> anyhow::Result<Counts> {
    let mut buffer = [0u8; 2048];
    for stream in streams {
        while stream.socket.recv(&mut buffer).is_ok() {}
    }
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| -> anyhow::Result<Counts> {
        let receiver = {
            let stop = stop.clone();
            scope.spawn(move || receive(streams, &stop))
        };
        let sent = send(streams, duration);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let received = match receiver.join() {
            Ok(r) => r?,
            Err(_) => bail!("the RTP sink panicked"),
        };
        let streams_with_loss = sent.iter().zip(&received).filter(|(s, r)| r < s).count();
        Ok(Counts {
            sent: sent.iter().sum(),
            received: received.iter().sum(),
            streams_with_loss,
        })
    })
}

fn send(streams: &[Stream], duration: Duration) -> Vec<u64> {
    let mut sent = vec![0u64; streams.len()];
    let mut packet = [0xffu8; 12 + PAYLOAD_BYTES];
    packet[0] = 0x80;
    packet[1] = 0; // PCMU
    let slots = (1000 / PACKETS_PER_SECOND) as usize; // one slot per millisecond of the 20 ms
    let start = Instant::now();
    let ticks = duration.as_millis() as usize;
    for tick in 0..ticks {
        let due = start + Duration::from_millis(tick as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let round = (tick / slots) as u32;
        for (index, stream) in streams.iter().enumerate().skip(tick % slots).step_by(slots) {
            packet[2..4].copy_from_slice(&(round as u16).to_be_bytes());
            packet[4..8].copy_from_slice(&(round * PAYLOAD_BYTES as u32).to_be_bytes());
            packet[8..12].copy_from_slice(&(index as u32).to_be_bytes());
            if stream.socket.send_to(&packet, stream.destination).is_ok() {
                sent[index] += 1;
            }
        }
    }
    sent
}

fn receive(streams: &[Stream], stop: &AtomicBool) -> anyhow::Result<Vec<u64>> {
    let mut received = vec![0u64; streams.len()];
    let mut epoll = Epoll::new()?;
    for (index, stream) in streams.iter().enumerate() {
        epoll.add(stream.socket.as_raw_fd(), index as u64)?;
    }
    let mut buffer = [0u8; 2048];
    let mut ready = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        epoll.wait(&mut ready, 50)?;
        for token in &ready {
            let socket = &streams[*token as usize].socket;
            while let Ok(len) = socket.recv(&mut buffer) {
                if len >= 12 {
                    let ssrc = u32::from_be_bytes([buffer[8], buffer[9], buffer[10], buffer[11]]) as usize;
                    if let Some(count) = received.get_mut(ssrc) {
                        *count += 1;
                    }
                }
            }
        }
    }
    Ok(received)
}

/// A level-triggered epoll set. Hand-written over libc: the baseline forwarder must be the
/// plainest loop the kernel allows, and the sink shares it.
pub struct Epoll {
    fd: i32,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new() -> anyhow::Result<Epoll> {
        // SAFETY: epoll_create1 has no memory preconditions.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            bail!("epoll_create1: {}", std::io::Error::last_os_error());
        }
        Ok(Epoll {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 512],
        })
    }

    pub fn add(&self, socket: i32, token: u64) -> anyhow::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `event` outlives the call; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, socket, &mut event) } < 0 {
            bail!("epoll_ctl: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Fills `ready` with the tokens of the sockets that can be read.
    pub fn wait(&mut self, ready: &mut Vec<u64>, timeout_ms: i32) -> anyhow::Result<()> {
        ready.clear();
        // SAFETY: the buffer holds `len` events and lives across the call.
        let n = unsafe { libc::epoll_wait(self.fd, self.events.as_mut_ptr(), self.events.len() as i32, timeout_ms) };
        if n < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                return Ok(());
            }
            bail!("epoll_wait: {error}");
        }
        ready.extend(self.events[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// Raises this process's open-file limit to its hard limit (children inherit it): thousands of
/// calls hold four RTP sockets each.
pub fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain struct in, plain struct out.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
