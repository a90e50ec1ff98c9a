//! The agent's leg as a WebRTC session, over real UDP on 127.0.0.1: a str0m peer plays the
//! browser (full ICE, DTLS client, its own offer), a plain socket plays the carrier. The browser
//! itself (Chromium) is the CLI tests' peer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialbridge_media::{
    GoneBecause, Law, MediaEvent, MediaLeg, MediaSession, PortPool, RelayMode, RelaySettings, RemoteLeg,
};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

fn pool() -> PortPool {
    PortPool::new("127.0.0.1".parse().unwrap(), 32_000..=32_999)
}

/// What the test asks of its browser.
enum Ask {
    /// Send 20 ms frames of this byte, PCMU.
    Speak(u8, usize),
    /// End the session (DTLS close_notify).
    Close,
}

/// A browser: full ICE, offering one sendrecv audio track of PCMU, on its own socket. It
/// reports each frame it receives (its first byte) and when it is connected.
struct Browser {
    asks: mpsc::UnboundedSender<Ask>,
    heard: mpsc::UnboundedReceiver<u8>,
}

async fn browser_offer() -> (Rtc, Mid, SdpPendingOffer, UdpSocket, String) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_pcmu(true, false)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(socket.local_addr().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    (rtc, mid, pending, socket, offer.to_sdp_string())
}

fn start_browser(mut rtc: Rtc, mid: Mid, socket: UdpSocket) -> Browser {
    let (asks, mut ask_rx) = mpsc::unbounded_channel();
    let (heard_tx, heard) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let local = socket.local_addr().unwrap();
        let mut buf = vec![0u8; 2000];
        let mut samples = 0u64;
        loop {
            let due = loop {
                match rtc.poll_output() {
                    Ok(Output::Timeout(at)) => break at,
                    Ok(Output::Transmit(t)) => {
                        let _ = socket.send_to(&t.contents, t.destination).await;
                    }
                    Ok(Output::Event(Event::MediaData(frame))) => {
                        let _ = heard_tx.send(frame.data.first().copied().unwrap_or(0));
                    }
                    Ok(Output::Event(_)) => {}
                    Err(_) => return,
                }
            };
            if !rtc.is_alive() {
                return;
            }
            tokio::select! {
                received = socket.recv_from(&mut buf) => {
                    let Ok((n, source)) = received else { return };
                    if let Ok(receive) = Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                        let _ = rtc.handle_input(Input::Receive(Instant::now(), receive));
                    }
                }
                () = tokio::time::sleep_until(due.into()) => {
                    let _ = rtc.handle_input(Input::Timeout(Instant::now()));
                }
                ask = ask_rx.recv() => match ask {
                    Some(Ask::Speak(byte, frames)) => {
                        for _ in 0..frames {
                            let Some(writer) = rtc.writer(mid) else { break };
                            let pt = writer.payload_params().find(|p| p.spec().codec == Codec::PCMU).unwrap().pt();
                            let time = MediaTime::new(samples, Frequency::EIGHT_KHZ);
                            samples += 160;
                            writer.write(pt, Instant::now(), time, vec![byte; 160]).unwrap();
                            while let Ok(Output::Transmit(t)) = rtc.poll_output() {
                                let _ = socket.send_to(&t.contents, t.destination).await;
                            }
                        }
                    }
                    Some(Ask::Close) => {
                        let _ = rtc.close();
                    }
                    None => return,
                },
            }
        }
    });
    Browser { asks, heard }
}

async fn event(events: &mut mpsc::Receiver<MediaEvent>) -> MediaEvent {
    timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event of the agent's leg")
        .expect("the relay runs")
}

fn rtp(pt: u8, seq: u16, byte: u8) -> Vec<u8> {
    let mut packet = vec![0x80, pt];
    packet.extend(seq.to_be_bytes());
    packet.extend((u32::from(seq) * 160).to_be_bytes());
    packet.extend([1, 2, 3, 4]);
    packet.extend([byte; 160]);
    packet
}

#[tokio::test]
async fn a_browser_leg_is_answered_connects_and_is_bridged_to_a_plain_rtp_leg_both_ways() {
    let pool = pool();
    let (session, mut events) = MediaSession::start(
        &pool,
        RelaySettings {
            inactivity_timeout: Duration::from_secs(60),
        },
        None,
    )
    .unwrap();
    let (mut rtc, mid, pending, socket, offer) = browser_offer().await;
    let answer = session
        .accept_webrtc(offer.clone(), "127.0.0.1".parse().unwrap())
        .await
        .expect("answered");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("PCMU/8000"), "{answer}");
    assert!(
        answer.contains(&format!("127.0.0.1 {} typ host", session.agent_port())),
        "{answer}"
    );
    assert!(
        session
            .accept_webrtc(offer, "127.0.0.1".parse().unwrap())
            .await
            .is_err(),
        "one browser per call"
    );
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    let mut browser = start_browser(rtc, mid, socket);
    assert_eq!(event(&mut events).await, MediaEvent::WebRtcConnected(Law::Mu));

    let carrier = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let carrier_address: SocketAddr = carrier.local_addr().unwrap();
    session.set_remote(
        MediaLeg::Customer,
        RemoteLeg {
            address: carrier_address,
            law: Law::A,
            telephone_event: None,
            sends: true,
        },
    );
    session.set_mode(RelayMode::Bridged);
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The browser speaks: the carrier hears it, converted to its A-law.
    browser.asks.send(Ask::Speak(0x11, 5)).unwrap();
    let mut buf = vec![0u8; 2000];
    let (n, _) = timeout(Duration::from_secs(5), carrier.recv_from(&mut buf))
        .await
        .expect("the carrier hears the browser")
        .unwrap();
    assert_eq!(n, 172);
    assert_eq!(buf[1] & 0x7F, 8, "A-law for the carrier");
    assert_eq!(buf[12], Law::A.encode(Law::Mu.decode(0x11)));

    // The carrier speaks: the browser hears it, in its µ-law.
    let to_customer_port: SocketAddr = format!("127.0.0.1:{}", session.customer_port()).parse().unwrap();
    for seq in 0..5 {
        carrier.send_to(&rtp(8, seq, 0x55), to_customer_port).await.unwrap();
    }
    let heard = timeout(Duration::from_secs(5), browser.heard.recv())
        .await
        .expect("the browser hears the carrier")
        .unwrap();
    assert_eq!(heard, Law::Mu.encode(Law::A.decode(0x55)));

    // The browser ends its session: the relay says it is gone.
    browser.asks.send(Ask::Close).unwrap();
    assert_eq!(event(&mut events).await, MediaEvent::WebRtcGone(GoneBecause::Closed));
    let stats = session.finish().await;
    assert!(
        stats.agent_to_customer_packets >= 1 && stats.customer_to_agent_packets >= 1,
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_browser_that_never_connects_is_gone_and_a_bad_offer_is_refused() {
    let pool = pool();
    let (session, mut events) = MediaSession::start(
        &pool,
        RelaySettings {
            inactivity_timeout: Duration::from_secs(60),
        },
        None,
    )
    .unwrap();
    assert!(session
        .accept_webrtc("v=0\r\nnot an offer".into(), "127.0.0.1".parse().unwrap())
        .await
        .is_err());
    assert_eq!(
        event(&mut events).await,
        MediaEvent::WebRtcGone(GoneBecause::Failed),
        "the call is told: it would wait for this browser's media"
    );
    let (_rtc, _mid, _pending, _socket, offer) = browser_offer().await;
    session
        .accept_webrtc(offer, "127.0.0.1".parse().unwrap())
        .await
        .expect("answered");
    // Nobody brings it up: gone after the connect timeout (15 s).
    let gone = timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("told")
        .unwrap();
    assert_eq!(gone, MediaEvent::WebRtcGone(GoneBecause::NeverConnected));
    session.finish().await;
}
