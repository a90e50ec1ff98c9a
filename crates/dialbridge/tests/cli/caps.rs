//! Caps that hold under a race, on SQLite and on PostgreSQL: 50 agents ask for a call at the
//! same instant against an enterprise's concurrency cap of 5, or a trunk's `max_channels` of 5,
//! while the accepted calls are held up (the carrier answers every leg and waits for the BYE),
//! and exactly 5 are accepted.

use super::*;

const RACERS: usize = 50;
const CAP: usize = 5;

#[derive(Clone, Copy)]
enum Cap {
    EnterpriseConcurrency,
    TrunkChannels,
}

fn race_against(op: Operator, cap: Cap) {
    let carrier_port = match cap {
        Cap::EnterpriseConcurrency => crowd_store(&op, RACERS, &format!("concurrency_cap = {CAP}"), 100),
        Cap::TrunkChannels => crowd_store(&op, RACERS, "", CAP),
    };
    let server = serve(&op);
    let a = server.http.clone();
    // Every leg (the agents' telephones and the customers) reaches this carrier, which answers
    // and holds the call until dialbridge hangs it up.
    let mut carrier = dialbridge_testkit::SippBuilder::answering("phone_uas.xml", carrier_port, (2 * CAP) as u32)
        .silent_media()
        .spawn();
    crowd_online(&a, RACERS);

    let barrier = std::sync::Arc::new(std::sync::Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            let a = a.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                crowd_outcall(&a, i).expect("an answer")
            })
        })
        .collect();
    let replies: Vec<serde_json::Value> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let accepted: Vec<String> = replies
        .iter()
        .filter(|r| r["res"] == "0")
        .map(|r| r["uniqueId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(accepted.len(), CAP, "exactly the cap is accepted: {replies:?}");
    for r in &replies {
        assert!(["0", "10"].contains(&r["res"].as_str().unwrap()), "{r}");
    }

    // Held up: both legs of every accepted call are answered by the carrier, which keeps them up.
    let legs = || carrier.logs().matches("answer acknowledged").count();
    let until = Instant::now() + Duration::from_secs(20);
    while legs() < 2 * CAP && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(legs(), 2 * CAP, "{}", carrier.logs());
    let agents = op
        .json(&["admin", "agent", "list", "--enterprise", "3000001"])
        .to_string();
    for unique_id in &accepted {
        assert!(agents.contains(unique_id.as_str()), "{unique_id} still runs: {agents}");
    }
    for unique_id in &accepted {
        let hang_up = json_get(&a, &format!("/interface/HangUp?{}&uniqueId={unique_id}", admin_auth()));
        assert_eq!(hang_up["result"], "success", "{hang_up}");
    }
    for unique_id in &accepted {
        assert_eq!(cdr_row(&a, unique_id)["status"], "双方接听", "{unique_id}");
    }
    assert!(carrier.finish(Duration::from_secs(30)), "{}", carrier.logs());
    assert_eq!(
        carrier.logs().matches("INVITE call_id").count(),
        2 * CAP,
        "no refused request placed a leg"
    );
}

#[test]
fn fifty_racers_against_a_concurrency_cap_of_five_on_sqlite() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    race_against(Operator::new(), Cap::EnterpriseConcurrency);
}

#[test]
fn fifty_racers_against_a_concurrency_cap_of_five_on_postgres() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let Some(url) = dialbridge_testkit::fresh_postgres_database("dialbridge_caps") else {
        return;
    };
    race_against(Operator::on_postgres(url), Cap::EnterpriseConcurrency);
}

#[test]
fn fifty_racers_against_a_trunk_of_five_channels_on_sqlite() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    race_against(Operator::new(), Cap::TrunkChannels);
}

#[test]
fn fifty_racers_against_a_trunk_of_five_channels_on_postgres() {
    if dialbridge_testkit::skip_without_sipp() {
        return;
    }
    let Some(url) = dialbridge_testkit::fresh_postgres_database("dialbridge_caps") else {
        return;
    };
    race_against(Operator::on_postgres(url), Cap::TrunkChannels);
}
