//! Registers the benchmark's extensions, thousands in a few seconds, with their Contact on the
//! SIPp process that plays every agent's phone.
//!
//! Written by hand because SIPp 3.6 (Debian's) cannot take digest credentials from an injection
//! file (`[authentication username=[field0]]` is cut at the inner bracket), and one SIPp
//! process per extension would take minutes. This is set-up, not what is measured: plain UDP,
//! MD5 digest with qop=auth (RFC 7616), one registration at a time.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context};
use dialbridge_store::md5_hex;

pub fn register_all(registrar: SocketAddr, aors: &[String], password: &str, contact_port: u16) -> anyhow::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    let local = socket.local_addr()?;
    for (n, aor) in aors.iter().enumerate() {
        let mut authorization = None;
        let mut registered = false;
        for attempt in 0..4 {
            let request = register(
                registrar,
                local,
                aor,
                contact_port,
                n,
                attempt,
                authorization.as_deref(),
            );
            socket.send_to(request.as_bytes(), registrar)?;
            let reply = receive_for(&socket, &format!("{n}-{local}"))?;
            let status = reply.split_whitespace().nth(1).unwrap_or("");
            match status {
                "200" => {
                    registered = true;
                    break;
                }
                "401" => {
                    let nonce = challenge_nonce(&reply).context("401 without an MD5 challenge")?;
                    authorization = Some(digest(aor, password, &nonce, registrar));
                }
                _ => bail!("registering {aor}: {}", reply.lines().next().unwrap_or("")),
            }
        }
        if !registered {
            bail!("{aor} did not register");
        }
    }
    Ok(())
}

fn register(
    registrar: SocketAddr,
    local: SocketAddr,
    aor: &str,
    contact_port: u16,
    n: usize,
    cseq: u32,
    authorization: Option<&str>,
) -> String {
    let authorization = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    format!(
        "REGISTER sip:{registrar} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-bench-{n}-{cseq};rport\r\n\
         From: <sip:{aor}@{registrar}>;tag=bench{n}\r\n\
         To: <sip:{aor}@{registrar}>\r\n\
         Call-ID: {n}-{local}\r\n\
         CSeq: {} REGISTER\r\n\
         Contact: <sip:{aor}@127.0.0.1:{contact_port}>\r\n\
         {authorization}\
         Expires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        cseq + 1
    )
}

/// Reads until the reply to the given Call-ID arrives (a stray retransmission is skipped).
fn receive_for(socket: &UdpSocket, call_id: &str) -> anyhow::Result<String> {
    let mut buffer = [0u8; 4096];
    for _ in 0..8 {
        let len = socket.recv(&mut buffer).context("the registrar did not answer")?;
        let reply = String::from_utf8_lossy(&buffer[..len]).into_owned();
        if reply.contains(call_id) {
            return Ok(reply);
        }
    }
    bail!("no reply for {call_id}")
}

fn challenge_nonce(reply: &str) -> Option<String> {
    reply
        .lines()
        .filter(|l| l.starts_with("WWW-Authenticate:") && l.contains("algorithm=MD5"))
        .find_map(|l| Some(l.split("nonce=\"").nth(1)?.split('"').next()?.to_owned()))
}

fn digest(aor: &str, password: &str, nonce: &str, registrar: SocketAddr) -> String {
    let uri = format!("sip:{registrar}");
    let ha1 = md5_hex(&format!("{aor}:dialbridge:{password}"));
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let (nc, cnonce) = ("00000001", "bench");
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{aor}\", realm=\"dialbridge\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\""
    )
}
