use super::*;
use dialbridge_core::agent::Availability;
use dialbridge_core::destination::{Country, SpecialClass};
use dialbridge_core::DestinationRates;
use dialbridge_core::{
    CallPower, DestinationPolicy, EnterpriseId, EnterpriseSettings, Money, NumberLimit, SipAddress, Transport,
};
use dialbridge_engine::SipTransport;

const NOW: i64 = 1_700_000_000_000;

fn enterprise_id() -> EnterpriseId {
    EnterpriseId::new(3000001).unwrap()
}

fn trunk(name: &str, priority: u32) -> TrunkOption {
    let address = SipAddress {
        host: "127.0.0.1".into(),
        port: 5070,
    };
    TrunkOption {
        trunk: Trunk {
            name: name.into(),
            address,
            transport: Transport::Udp,
            auth_username: None,
            outbound_proxy: None,
            max_channels: 2,
            enterprises: vec![enterprise_id()],
            customer_number_format: Default::default(),
            caller_id_format: Default::default(),
            priority,
            keepalive_secs: 0,
            register_secs: 0,
            sources: Vec::new(),
        },
        up: true,
        running_calls: 0,
        route: Some(TrunkRoute {
            name: name.into(),
            address: "127.0.0.1:5070".parse().unwrap(),
            host: "127.0.0.1:5070".into(),
            transport: SipTransport::Udp,
            credential: None,
            number_format: Default::default(),
            caller_id_format: Default::default(),
            sources: Vec::new(),
        }),
    }
}

fn online() -> AgentState {
    AgentState::offline().log_in(Availability::Online, NOW).unwrap()
}

/// Everything a request needs to be accepted; each row of the table changes what it names.
struct World {
    enterprise: Enterprise,
    agent: AgentSettings,
    agent_state: AgentState,
    caller_ids: Vec<CallerId>,
    blacklist: Vec<BlacklistPattern>,
    calls_to_number: u64,
    bound_phone: Option<(PhoneType, String)>,
    phone_reachable: bool,
    running_calls: u64,
    trunks: Vec<TrunkOption>,
    request: OutcallRequest,
}

impl World {
    fn accepting() -> Self {
        let mut settings = EnterpriseSettings::new("Acme");
        settings.rate_per_minute = Money::from_ten_thousandths(1_200);
        Self {
            enterprise: Enterprise {
                id: enterprise_id(),
                settings,
                balance: Money::from_ten_thousandths(1_000_000),
                held: Money::ZERO,
            },
            agent: AgentSettings::new("Alice"),
            agent_state: online(),
            caller_ids: vec![CallerId {
                number: "02160001234".into(),
                enterprise_id: enterprise_id(),
                trunk: "carrier".into(),
            }],
            blacklist: Vec::new(),
            calls_to_number: 0,
            bound_phone: Some((PhoneType::Extension, "801".into())),
            phone_reachable: true,
            running_calls: 0,
            trunks: vec![trunk("carrier", 0), trunk("backup", 5)],
            request: OutcallRequest {
                customer_number: "13800138000".into(),
                user_field: String::new(),
                caller_id: None,
                ring_limits: RingLimits::default(),
            },
        }
    }

    fn check(&self) -> Result<Plan, Refusal> {
        let customer = Customer::of(&self.enterprise.settings, &self.request);
        let snapshot = Snapshot {
            enterprise: &self.enterprise,
            customer: &customer,
            agent: &self.agent,
            agent_state: &self.agent_state,
            caller_ids: &self.caller_ids,
            blacklist: &self.blacklist,
            calls_to_number: self.calls_to_number,
            bound_phone: self.bound_phone.as_ref(),
            phone_reachable: self.phone_reachable,
            running_calls: self.running_calls,
            trunks: &self.trunks,
        };
        check(&snapshot, &self.request, NOW)
    }
}

type Change = fn(&mut World);
/// Whether a refusal is the one a row expects.
type Expected = fn(&Refusal) -> bool;

/// One change per legacy code, in the spec's order (§2.1).
fn refusals() -> Vec<(&'static str, Change, Expected)> {
    vec![
        (
            "41 enterprise closed",
            |w| w.enterprise.settings.status = EnterpriseStatus::Closed,
            |r| matches!(r, Refusal::EnterpriseInactive(EnterpriseStatus::Closed)),
        ),
        (
            "4 agent disabled",
            |w| w.agent.active = false,
            |r| *r == Refusal::AgentDisabled,
        ),
        (
            "6 outbound off",
            |w| w.enterprise.settings.outbound_enabled = false,
            |r| *r == Refusal::OutboundDisabled,
        ),
        (
            "6 interface off",
            |w| w.enterprise.settings.interface_enabled = false,
            |r| *r == Refusal::OutboundDisabled,
        ),
        (
            "6 agent may not call out",
            |w| w.agent.outbound_allowed = false,
            |r| *r == Refusal::OutboundDisabled,
        ),
        (
            "6 no caller id",
            |w| w.caller_ids.clear(),
            |r| *r == Refusal::NoCallerId,
        ),
        (
            "5 balance zero",
            |w| w.enterprise.balance = Money::ZERO,
            |r| *r == Refusal::BalanceExhausted,
        ),
        (
            "5 balance below a minute's price",
            |w| w.enterprise.balance = Money::from_ten_thousandths(500),
            |r| *r == Refusal::BalanceExhausted,
        ),
        (
            "5 running calls hold what is left",
            |w| w.enterprise.held = Money::from_ten_thousandths(999_000),
            |r| *r == Refusal::BalanceExhausted,
        ),
        (
            "7 not a number",
            |w| w.request.customer_number = "12ab".into(),
            |r| matches!(r, Refusal::BadCustomerNumber(_)),
        ),
        (
            "7 an extension",
            |w| w.request.customer_number = "801".into(),
            |r| *r == Refusal::ExtensionAsCustomer,
        ),
        (
            "7 destination policy",
            |w| w.request.customer_number = "+44 909 123 4567".into(),
            |r| {
                *r == Refusal::DestinationForbidden(Destination::Special {
                    class: SpecialClass::Premium,
                    country: Country::parse("GB").ok(),
                    calling_code: 44,
                })
            },
        ),
        (
            "7 call power",
            |w| w.agent.call_power = CallPower::Internal,
            |r| matches!(r, Refusal::CallPowerForbids { .. }),
        ),
        (
            "11 blacklisted",
            |w| w.blacklist = vec![BlacklistPattern::parse("138*").unwrap()],
            |r| matches!(r, Refusal::Blacklisted(_)),
        ),
        (
            "14 unknown caller id",
            |w| w.request.caller_id = Some("02160009999".into()),
            |r| *r == Refusal::UnknownCallerId,
        ),
        (
            "6 default caller id gone",
            |w| w.enterprise.settings.default_caller_id = Some("02160009999".into()),
            |r| *r == Refusal::DefaultCallerIdGone,
        ),
        (
            "40 number limit",
            |w| {
                w.enterprise.settings.number_limit = Some(NumberLimit {
                    count: 3,
                    window_minutes: 60,
                });
                w.calls_to_number = 3;
            },
            |r| {
                matches!(
                    r,
                    Refusal::NumberLimitReached {
                        count: 3,
                        window_minutes: 60
                    }
                )
            },
        ),
        (
            "12 agent offline",
            |w| w.agent_state = AgentState::offline(),
            |r| *r == Refusal::Agent(AgentRefusal::Offline),
        ),
        (
            "33 agent calling",
            |w| w.agent_state = online().start_call("n-1.1", NOW).unwrap(),
            |r| *r == Refusal::Agent(AgentRefusal::AlreadyCalling),
        ),
        (
            "13 agent in a call",
            |w| w.agent_state = online().start_call("n-1.1", NOW).unwrap().call_connected("n-1.1"),
            |r| *r == Refusal::Agent(AgentRefusal::InCall),
        ),
        (
            "9 phone unreachable",
            |w| w.phone_reachable = false,
            |r| *r == Refusal::PhoneUnreachable,
        ),
        (
            "9 no bound phone",
            |w| {
                w.bound_phone = None;
                w.phone_reachable = false;
            },
            |r| *r == Refusal::NoBoundPhone,
        ),
        (
            "10 concurrency cap",
            |w| {
                w.enterprise.settings.concurrency_cap = Some(2);
                w.running_calls = 2;
            },
            |r| *r == Refusal::ConcurrencyCapReached,
        ),
        (
            "6 caller id's trunk gone",
            |w| w.trunks.retain(|t| t.trunk.name != "carrier"),
            |r| *r == Refusal::CallerIdTrunkGone("carrier".into()),
        ),
        (
            "10 every trunk full",
            |w| w.trunks.iter_mut().for_each(|t| t.running_calls = 2),
            |r| matches!(r, Refusal::NoTrunk(s) if s.len() == 2),
        ),
    ]
}

#[test]
fn the_untouched_world_is_accepted_through_the_caller_ids_trunk_then_the_others() {
    let plan = World::accepting().check().unwrap();
    assert_eq!(plan.customer.digits(), "13800138000");
    assert_eq!(plan.caller_id.number, "02160001234");
    assert_eq!(plan.phone, (PhoneType::Extension, "801".to_owned()));
    let names: Vec<_> = plan.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["carrier", "backup"]);
    assert!(plan.skipped.is_empty());
}

#[test]
fn a_credit_limit_pays_what_the_balance_does_not_and_no_more() {
    let mut world = World::accepting();
    world.enterprise.balance = Money::from_ten_thousandths(500);
    world.enterprise.settings.credit_limit = Money::from_ten_thousandths(1_000);
    assert!(world.check().is_ok(), "0.05 + 0.10 pays a minute at 0.12");
    world.enterprise.held = Money::from_ten_thousandths(1_200);
    assert_eq!(world.check(), Err(Refusal::BalanceExhausted), "a running call holds it");
}

#[test]
fn each_refusal_alone_gives_its_code() {
    for (name, change, expected) in refusals() {
        let mut world = World::accepting();
        change(&mut world);
        let refusal = world.check().expect_err(name);
        assert!(expected(&refusal), "{name}: got {refusal:?}");
    }
}

/// What a row's order can be told apart from: its legacy code (its name's first word), and the
/// agent's state for 12, 33 and 13, which all set it (the one applied last wins, whatever the
/// order of the checks). Two rows of one group test no order.
fn group(row: &str) -> &str {
    match row.split(' ').next().unwrap_or(row) {
        "12" | "33" | "13" => "agent state",
        code => code,
    }
}

#[test]
fn when_two_refusals_apply_the_one_earlier_in_the_spec_order_wins() {
    let table = refusals();
    for (i, (earlier, change_earlier, expected)) in table.iter().enumerate() {
        for (later, change_later, _) in &table[i + 1..] {
            if group(earlier) == group(later) {
                continue;
            }
            let mut world = World::accepting();
            change_later(&mut world);
            change_earlier(&mut world);
            let refusal = world.check().expect_err(earlier);
            assert!(expected(&refusal), "{earlier} with {later}: got {refusal:?}");
        }
    }
}

#[test]
fn a_trunk_that_no_longer_serves_the_enterprise_is_passed_over_even_as_the_caller_ids_own() {
    let mut world = World::accepting();
    world.trunks[0].trunk.enterprises.clear();
    let plan = world.check().unwrap();
    let names: Vec<_> = plan.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["backup"], "the call fails over to the enterprise's other trunk");
    assert!(plan.skipped[0].contains("no longer serves"), "{:?}", plan.skipped);

    world.trunks[1].trunk.enterprises.clear();
    assert!(
        matches!(world.check(), Err(Refusal::NoTrunk(_))),
        "no trunk serves it: res 10"
    );
}

#[test]
fn down_full_and_unresolved_trunks_are_skipped_and_the_others_ordered_by_priority_then_name() {
    let mut world = World::accepting();
    world.trunks.extend([
        trunk("alpha", 5),
        trunk("zulu", 1),
        trunk("down", 0),
        trunk("full", 0),
        trunk("nowhere", 0),
    ]);
    world.trunks.iter_mut().for_each(|t| match t.trunk.name.as_str() {
        "down" => t.up = false,
        "full" => t.running_calls = 2,
        "nowhere" => t.route = None,
        _ => {}
    });
    let plan = world.check().unwrap();
    let names: Vec<_> = plan.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["carrier", "zulu", "alpha", "backup"]);
    assert_eq!(plan.skipped.len(), 3, "{:?}", plan.skipped);
}

#[test]
fn a_given_caller_id_is_normalised_and_the_default_is_the_first_number_without_a_setting() {
    let mut world = World::accepting();
    world.caller_ids.push(CallerId {
        number: "02160005678".into(),
        enterprise_id: enterprise_id(),
        trunk: "backup".into(),
    });
    world.request.caller_id = Some("+86 21 6000 5678".into());
    let plan = world.check().unwrap();
    assert_eq!(plan.caller_id.number, "02160005678");
    assert_eq!(plan.routes[0].name, "backup", "the caller id's trunk first");
    world.request.caller_id = Some(String::new());
    assert_eq!(world.check().unwrap().caller_id.number, "02160001234");
}

#[test]
fn the_destination_policy_is_checked_before_call_power_and_names_what_it_refused() {
    let mut world = World::accepting();
    world.agent.call_power = CallPower::National;
    world.request.customer_number = "+33 6 12 34 56 78".into();
    let refusal = world.check().unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "the enterprise's destination policy does not allow an international number in FR"
    );
    world.enterprise.settings.destinations = DestinationPolicy::parse("FR", "").unwrap();
    assert!(matches!(world.check(), Err(Refusal::CallPowerForbids { .. })));
    world.agent.call_power = CallPower::All;
    assert_eq!(world.check().unwrap().customer.digits(), "0033612345678");
    world.request.customer_number = "+44 20 7123 4567".into();
    assert!(
        matches!(world.check(), Err(Refusal::DestinationForbidden(_))),
        "GB is not FR"
    );
}

#[test]
fn credit_is_checked_at_the_destinations_rate() {
    let mut world = World::accepting();
    world.enterprise.balance = Money::from_ten_thousandths(10_000);
    world.enterprise.settings.destinations = DestinationPolicy::parse("GB", "").unwrap();
    world.enterprise.settings.destination_rates = DestinationRates::parse("44=2.00").unwrap();
    world.request.customer_number = "+44 20 7123 4567".into();
    assert_eq!(
        Customer::of(&world.enterprise.settings, &world.request).rate,
        Money::from_ten_thousandths(20_000)
    );
    assert_eq!(world.check(), Err(Refusal::BalanceExhausted), "1.00 does not pay 2.00");
    world.enterprise.balance = Money::from_ten_thousandths(20_000);
    assert!(world.check().is_ok());

    world.enterprise.balance = Money::from_ten_thousandths(1_500);
    world.request.customer_number = "13800138000".into();
    assert_eq!(
        Customer::of(&world.enterprise.settings, &world.request).rate,
        Money::from_ten_thousandths(1_200),
        "no prefix matches: the enterprise's rate"
    );
    assert!(world.check().is_ok());
    world.request.customer_number = "not a number".into();
    assert_eq!(
        Customer::of(&world.enterprise.settings, &world.request).rate,
        Money::from_ten_thousandths(1_200)
    );
}

#[test]
fn a_number_no_plan_allocates_is_a_bad_number_whatever_the_policy() {
    let mut world = World::accepting();
    world.enterprise.settings.destinations =
        DestinationPolicy::parse("*", "premium,satellite,shared_cost,non_geographic").unwrap();
    world.request.customer_number = "00000000000".into();
    let refusal = world.check().unwrap_err();
    assert!(
        matches!(&refusal, Refusal::BadCustomerNumber(why) if why.contains("not a valid number")),
        "{refusal:?}"
    );
}

#[test]
fn ring_limits_only_shorten_the_enterprises_rings() {
    assert_eq!(RingLimits::default().apply(30, 60), (30, 60));
    let limits = RingLimits {
        agent_secs: Some(10),
        customer_secs: Some(90),
    };
    assert_eq!(
        limits.apply(30, 60),
        (10, 60),
        "90 s is longer than the enterprise allows"
    );
}
