//! The relay with real UDP sockets on 127.0.0.1 playing both phones.

use std::net::SocketAddr;
use std::time::Duration;

use dialbridge_media::sdp::TELEPHONE_EVENT_PT;
use dialbridge_media::{Law, MediaEvent, MediaLeg, MediaSession, PortPool, RelayMode, RelaySettings, RemoteLeg};
use tokio::net::UdpSocket;
use tokio::time::timeout;

fn pool() -> PortPool {
    // A range of its own per test binary run; pairs held elsewhere are skipped.
    PortPool::new("127.0.0.1".parse().unwrap(), 31_000..=31_999)
}

fn rtp(pt: u8, seq: u16, payload_byte: u8) -> Vec<u8> {
    let mut p = vec![
        0x80,
        pt,
        (seq >> 8) as u8,
        seq as u8,
        0,
        0,
        0,
        0,
        0xAA,
        0xBB,
        0xCC,
        0xDD,
    ];
    p.extend(std::iter::repeat_n(payload_byte, 160));
    p
}

/// A session whose legs are never reported silent during a test.
fn quiet_session(pool: &PortPool) -> MediaSession {
    MediaSession::start(
        pool,
        RelaySettings {
            inactivity_timeout: Duration::from_secs(60),
        },
        None,
    )
    .unwrap()
    .0
}

async fn recv(socket: &UdpSocket) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    let (n, _) = timeout(Duration::from_millis(500), socket.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

struct Phones {
    agent: UdpSocket,
    customer: UdpSocket,
    to_agent_port: SocketAddr,
    to_customer_port: SocketAddr,
}

async fn phones(session: &MediaSession, agent_law: Law, customer_law: Law) -> Phones {
    phones_with_events(
        session,
        (agent_law, Some(TELEPHONE_EVENT_PT)),
        (customer_law, Some(TELEPHONE_EVENT_PT)),
    )
    .await
}

/// Each phone's law and the payload type it takes telephone events under.
async fn phones_with_events(session: &MediaSession, agent: (Law, Option<u8>), customer: (Law, Option<u8>)) -> Phones {
    let (agent_law, agent_events) = agent;
    let (customer_law, customer_events) = customer;
    let agent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let customer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let remote = |socket: &UdpSocket, law: Law, telephone_event: Option<u8>| RemoteLeg {
        address: socket.local_addr().unwrap(),
        law,
        telephone_event,
        sends: true,
    };
    session.set_remote(MediaLeg::Agent, remote(&agent, agent_law, agent_events));
    session.set_remote(MediaLeg::Customer, remote(&customer, customer_law, customer_events));
    Phones {
        agent,
        customer,
        to_agent_port: format!("127.0.0.1:{}", session.agent_port()).parse().unwrap(),
        to_customer_port: format!("127.0.0.1:{}", session.customer_port()).parse().unwrap(),
    }
}

#[tokio::test]
async fn bridged_media_flows_both_ways_and_is_counted() {
    let pool = pool();
    let session = quiet_session(&pool);
    let p = phones(&session, Law::Mu, Law::Mu).await;
    session.set_mode(RelayMode::Bridged);
    tokio::time::sleep(Duration::from_millis(20)).await;
    for seq in 0..10u16 {
        p.agent.send_to(&rtp(0, seq, 0x11), p.to_agent_port).await.unwrap();
        assert_eq!(
            recv(&p.customer).await.unwrap(),
            rtp(0, seq, 0x11),
            "agent → customer unchanged"
        );
        p.customer
            .send_to(&rtp(0, seq, 0x22), p.to_customer_port)
            .await
            .unwrap();
        assert_eq!(
            recv(&p.agent).await.unwrap(),
            rtp(0, seq, 0x22),
            "customer → agent unchanged"
        );
    }
    assert_eq!(pool.in_use(), 2);
    let stats = session.finish().await;
    assert_eq!(stats.agent_to_customer_packets, 10);
    assert_eq!(stats.customer_to_agent_packets, 10);
    assert_eq!(stats.agent_to_customer_bytes, 10 * 172);
    assert_eq!(pool.in_use(), 0, "ports are released when the call's media ends");
}

#[tokio::test]
async fn different_laws_are_transcoded() {
    let pool = pool();
    let session = quiet_session(&pool);
    let p = phones(&session, Law::Mu, Law::A).await;
    session.set_mode(RelayMode::Bridged);
    tokio::time::sleep(Duration::from_millis(20)).await;
    p.agent.send_to(&rtp(0, 1, 0xFF), p.to_agent_port).await.unwrap();
    let got = recv(&p.customer).await.unwrap();
    assert_eq!(got[1], 8, "PCMU became PCMA");
    assert!(
        got[12..].iter().all(|b| *b == Law::A.encode(0)),
        "silence stays silence"
    );
    p.customer
        .send_to(&rtp(8, 1, Law::A.encode(1000)), p.to_customer_port)
        .await
        .unwrap();
    let got = recv(&p.agent).await.unwrap();
    assert_eq!(got[1], 0);
    let level = Law::Mu.decode(got[12]);
    assert!((900..=1100).contains(&level), "{level}");
    session.finish().await;
}

#[tokio::test]
async fn phases_decide_what_flows_and_the_agent_hears_ringback() {
    let pool = pool();
    let session = quiet_session(&pool);
    let p = phones(&session, Law::Mu, Law::Mu).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    p.agent.send_to(&rtp(0, 1, 0x11), p.to_agent_port).await.unwrap();
    assert!(
        recv(&p.customer).await.is_none(),
        "silent: nothing reaches the customer"
    );

    session.set_mode(RelayMode::Ringback);
    let tone = recv(&p.agent).await.expect("ringback");
    assert_eq!(tone[1] & 0x7F, 0);
    assert_eq!(tone.len(), 172);

    session.set_mode(RelayMode::EarlyMedia);
    tokio::time::sleep(Duration::from_millis(50)).await;
    while timeout(Duration::from_millis(30), async { recv(&p.agent).await })
        .await
        .ok()
        .flatten()
        .is_some()
    {}
    p.customer.send_to(&rtp(0, 7, 0x33), p.to_customer_port).await.unwrap();
    assert_eq!(
        recv(&p.agent).await.unwrap(),
        rtp(0, 7, 0x33),
        "early media reaches the agent"
    );
    p.agent.send_to(&rtp(0, 2, 0x11), p.to_agent_port).await.unwrap();
    assert!(
        recv(&p.customer).await.is_none(),
        "but the agent is not heard before the answer"
    );
    let stats = session.finish().await;
    assert!(stats.ringback_packets >= 1);
}

#[tokio::test]
async fn latching_follows_the_real_source_and_ignores_strangers() {
    let pool = pool();
    let session = quiet_session(&pool);
    let p = phones(&session, Law::Mu, Law::Mu).await;
    // The agent's SDP named a port it does not use: it sends from another socket (NAT).
    let real_agent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    session.set_mode(RelayMode::Bridged);
    tokio::time::sleep(Duration::from_millis(20)).await;
    real_agent.send_to(&rtp(0, 1, 0x11), p.to_agent_port).await.unwrap();
    assert!(recv(&p.customer).await.is_some());
    p.customer.send_to(&rtp(0, 1, 0x22), p.to_customer_port).await.unwrap();
    assert!(
        recv(&real_agent).await.is_some(),
        "sent back where the agent's packets came from"
    );
    assert!(recv(&p.agent).await.is_none(), "not to the SDP address");
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stranger.send_to(&rtp(0, 9, 0x99), p.to_agent_port).await.unwrap();
    assert!(recv(&p.customer).await.is_none(), "a stranger's packets are dropped");
    session.finish().await;
}

#[tokio::test]
async fn a_silent_leg_is_reported_once() {
    let pool = pool();
    let (session, mut events) = MediaSession::start(
        &pool,
        RelaySettings {
            inactivity_timeout: Duration::from_millis(200),
        },
        None,
    )
    .unwrap();
    let p = phones(&session, Law::Mu, Law::Mu).await;
    session.set_mode(RelayMode::Bridged);
    let keep_agent_alive = async {
        for seq in 0..30u16 {
            let _ = p.agent.send_to(&rtp(0, seq, 0x11), p.to_agent_port).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (event, ()) = tokio::join!(timeout(Duration::from_secs(2), events.recv()), keep_agent_alive);
    assert_eq!(event.unwrap(), Some(MediaEvent::Inactive(MediaLeg::Customer)));
    assert!(timeout(Duration::from_millis(400), events.recv())
        .await
        .map(|e| e != Some(MediaEvent::Inactive(MediaLeg::Customer)))
        .unwrap_or(true));
    session.finish().await;
}

#[tokio::test]
async fn dtmf_events_cross_under_each_legs_payload_type_and_are_never_transcoded() {
    let pool = pool();
    let session = quiet_session(&pool);
    // The carrier answered telephone-event as 96 (and A-law); the agent's phone took none.
    let p = phones_with_events(&session, (Law::Mu, None), (Law::A, Some(96))).await;
    session.set_mode(RelayMode::Bridged);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Digit 5, end bit clear, volume 10, duration 160: sent under our offer's type.
    let mut digit = rtp(TELEPHONE_EVENT_PT, 7, 0);
    digit.truncate(12);
    digit.extend([5, 0x0a, 0, 160]);
    p.agent.send_to(&digit, p.to_agent_port).await.unwrap();
    let got = recv(&p.customer).await.unwrap();
    assert_eq!(got[1] & 0x7F, 96);
    assert_eq!(&got[12..], &[5, 0x0a, 0, 160], "not transcoded as if it were A-law");
    assert_eq!(&got[2..12], &digit[2..12], "sequence, timestamp and SSRC kept");
    // The other way the agent takes no events: nothing is sent, audio still is.
    p.customer.send_to(&digit, p.to_customer_port).await.unwrap();
    p.customer
        .send_to(&rtp(8, 8, Law::A.encode(0)), p.to_customer_port)
        .await
        .unwrap();
    let got = recv(&p.agent).await.unwrap();
    assert_eq!(got[1], 0, "the audio, not the event: {got:?}");
    let stats = session.finish().await;
    assert_eq!(stats.telephone_events, 1);
}

#[tokio::test]
async fn on_hold_the_customer_hears_the_hold_tone_and_neither_hears_the_other() {
    let pool = pool();
    let session = quiet_session(&pool);
    let p = phones(&session, Law::Mu, Law::A).await;
    session.set_mode(RelayMode::Bridged);
    // Sent until the bridge is in place (the mode is a message to the relay's task).
    let relayed = loop {
        p.agent.send_to(&rtp(0, 1, 0x11), p.to_agent_port).await.unwrap();
        if let Some(packet) = recv(&p.customer).await {
            break packet;
        }
    };
    assert_eq!(relayed[1] & 0x7F, 8, "converted to the customer's A-law");

    session.set_mode(RelayMode::OnHold);
    // 200 ms of the tone's first beep: packets of the customer's stream, marked at its start.
    let mut tone = Vec::new();
    while tone.len() < 10 {
        let packet = recv(&p.customer).await.expect("the hold tone");
        if tone.is_empty() && packet[12..] == relayed[12..] {
            continue; // relayed before the hold
        }
        assert_eq!(&packet[8..12], &relayed[8..12], "the stream the customer is sent");
        tone.push(packet);
    }
    assert_eq!(tone[0][1], 0x80 | 8, "marked, A-law");
    assert!(
        tone.iter().all(|p| p[12..].iter().any(|b| *b != Law::A.encode(0))),
        "a beep"
    );
    let sequences: Vec<u16> = tone.iter().map(|p| u16::from_be_bytes([p[2], p[3]])).collect();
    assert!(
        sequences.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "one stream: {sequences:?}"
    );
    // Now on hold for sure: neither side's sound reaches the other; the agent hears silence.
    for seq in 2..12 {
        p.agent.send_to(&rtp(0, seq, 0x11), p.to_agent_port).await.unwrap();
        p.customer
            .send_to(&rtp(8, seq, 0x33), p.to_customer_port)
            .await
            .unwrap();
    }
    for _ in 0..10 {
        let packet = recv(&p.customer).await.expect("the hold tone goes on");
        assert_ne!(packet[12..], relayed[12..], "no sound of the agent's");
        let to_agent = recv(&p.agent).await.expect("silence for the agent's leg");
        assert!(
            to_agent[12..].iter().all(|b| *b == Law::Mu.encode(0)),
            "nothing of the customer's"
        );
    }

    session.set_mode(RelayMode::Bridged);
    let resumed = loop {
        p.customer.send_to(&rtp(8, 20, 0x33), p.to_customer_port).await.unwrap();
        if let Some(packet) = recv(&p.agent)
            .await
            .filter(|p| p[12..].iter().any(|b| *b != Law::Mu.encode(0)))
        {
            break packet;
        }
    };
    assert_eq!(resumed[1] & 0x7F, 0, "converted to the agent's µ-law");
    let stats = session.finish().await;
    assert!(stats.hold_tone_packets >= 10, "{stats:?}");
}
