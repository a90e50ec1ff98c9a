//! One call's task: it owns the call's legs and media, runs the state machine, and reports.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialbridge_core::call::{CallEvent, CallMachine, Effect, Leg as CallLeg, Progress};
use dialbridge_media::sdp::Direction;
use dialbridge_media::{sdp, Law, MediaEvent, MediaLeg, MediaSession, RecordFrom, RelayMode};
use dialbridge_sip::{Leg, LegEvent, LegSessionTimer, LegSpec, Renegotiation, SessionDue, SipTransport};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use crate::{AgentPhone, CallReport, CallUpdate, Control, PreviewOutcall, Shared, SoftphoneError};

/// One call's clock: the wall time when it began, advanced by a monotonic clock. Its record
/// gets wall times, and its timers cannot fire early or late when the system clock is set
/// during the call.
#[derive(Clone, Copy)]
struct CallClock {
    wall_at_start: i64,
    started: Instant,
}

impl CallClock {
    fn start() -> Self {
        let wall_at_start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self {
            wall_at_start,
            started: Instant::now(),
        }
    }

    /// Unix milliseconds, the machine's clock.
    fn now_ms(&self) -> i64 {
        self.wall_at_start + i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX / 2)
    }

    /// When the machine's deadline `at` (unix milliseconds on this clock) comes.
    fn instant_of(&self, at: i64) -> Instant {
        self.started + Duration::from_millis(u64::try_from(at - self.wall_at_start).unwrap_or(0))
    }
}

/// The next event of an optional leg; pending forever when there is none (or it ended).
async fn next_leg_event(leg: &mut Option<Leg>) -> LegEvent {
    match leg {
        Some(l) => match l.next_event().await {
            Some(event) => event,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// A leg's session refresh and how the far end took it (`Err`: the status that refused it).
type RefreshResult = (CallLeg, Result<(), u16>);

/// Our side of a leg's session description, kept to answer the far end's re-INVITEs and
/// UPDATEs (the media stays anchored here: nothing about them reaches the other leg).
struct LocalDescription {
    session_id: u64,
    version: u64,
    port: u16,
    laws: Vec<Law>,
    last: String,
}

impl LocalDescription {
    fn offer(ip: std::net::IpAddr, port: u16, laws: &[Law]) -> Self {
        let session_id: u64 = rand::random::<u32>().into();
        let last = sdp::offer(session_id, ip, port, laws);
        Self {
            session_id,
            version: session_id,
            port,
            laws: laws.to_vec(),
            last,
        }
    }

    /// Our answer to a re-offer: the law it chose, the direction that answers its own; the
    /// version goes up only when the description changes.
    fn answer(&mut self, ip: std::net::IpAddr, law: Law, direction: Direction) -> String {
        let same = sdp::describe(self.session_id, self.version, ip, self.port, &[law], direction);
        if same != self.last {
            self.version += 1;
            self.laws = vec![law];
            self.last = sdp::describe(self.session_id, self.version, ip, self.port, &self.laws, direction);
        }
        self.last.clone()
    }
}

struct CallTask {
    shared: Arc<Shared>,
    /// Customer INVITEs sent so far (each failover sends one more).
    customer_attempts: usize,
    /// Each answered leg's RFC 4028 session timer (who refreshes, when), on the time since
    /// the call began.
    session_timers: HashMap<CallLeg, LegSessionTimer>,
    clock: CallClock,
    refresh_results: (
        mpsc::UnboundedSender<RefreshResult>,
        mpsc::UnboundedReceiver<RefreshResult>,
    ),
    agent_description: Option<LocalDescription>,
    customer_description: Option<LocalDescription>,
    request: PreviewOutcall,
    media: MediaSession,
    agent: Option<Leg>,
    customer: Option<Leg>,
    agent_law: Law,
    hang_ups: JoinSet<()>,
    updates: mpsc::UnboundedSender<CallUpdate>,
    /// Events the task produced itself (an unroutable agent, a leg that could not be sent).
    pending: VecDeque<CallEvent>,
    /// The agent's softphone leg: whether its page offered, and whether its media came up.
    softphone: SoftphoneLeg,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum SoftphoneLeg {
    #[default]
    Ringing,
    Offered,
    Connected,
    Gone,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    request: PreviewOutcall,
    media: MediaSession,
    mut media_events: mpsc::Receiver<MediaEvent>,
    mut control: mpsc::UnboundedReceiver<Control>,
    updates: mpsc::UnboundedSender<CallUpdate>,
) {
    let span = tracing::info_span!("call", unique_id = %request.unique_id);
    async move {
        let unique_id = request.unique_id.clone();
        let clock = CallClock::start();
        let (machine, effects) = CallMachine::start(request.timers, clock.now_ms());
        let fallbacks = u32::try_from(request.fallback_trunks.len()).unwrap_or(u32::MAX);
        let mut machine = machine.with_customer_fallbacks(fallbacks);
        let mut task = CallTask {
            shared: shared.clone(),
            customer_attempts: 0,
            session_timers: HashMap::new(),
            clock,
            refresh_results: mpsc::unbounded_channel(),
            agent_description: None,
            customer_description: None,
            request,
            media,
            agent: None,
            customer: None,
            agent_law: Law::Mu,
            hang_ups: JoinSet::new(),
            updates,
            pending: VecDeque::new(),
            softphone: SoftphoneLeg::default(),
        };
        task.execute(effects);
        while !machine.is_finished() {
            let wake = match task.pending.pop_front() {
                Some(event) => Wake::Event(event),
                None => {
                    let deadline = machine.next_deadline().map(|at| clock.instant_of(at));
                    task.wait_event(&mut media_events, &mut control, deadline).await
                }
            };
            let effects = match wake {
                Wake::Event(event) => {
                    tracing::debug!(?event, "call event");
                    machine.apply(event, clock.now_ms())
                }
                Wake::Deadline => machine.on_deadline(clock.now_ms()),
                Wake::CreditRenewed(paid_minutes) => {
                    machine.credit_renewed(paid_minutes, clock.now_ms());
                    Vec::new()
                }
            };
            task.execute(effects);
        }
        let outcome = machine.outcome();
        tracing::info!(?outcome, "call ended");
        task.finish(&machine, outcome, &unique_id).await;
        shared.calls().remove(&unique_id);
    }
    .instrument(span)
    .await
}

/// What woke the call task.
enum Wake {
    Event(CallEvent),
    /// The machine's next deadline has come.
    Deadline,
    /// The call's credit hold now pays this many minutes.
    CreditRenewed(u32),
}

/// Sleeps until the machine's next deadline; forever when it has none.
async fn sleep_until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `next` is due; forever when there is none.
async fn sleep_until_due<K>(next: Option<(K, Instant)>) {
    match next {
        Some((_, at)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl CallTask {
    async fn wait_event(
        &mut self,
        media_events: &mut mpsc::Receiver<MediaEvent>,
        control: &mut mpsc::UnboundedReceiver<Control>,
        machine_deadline: Option<Instant>,
    ) -> Wake {
        loop {
            let next_session = self
                .session_timers
                .iter()
                .filter_map(|(leg, timer)| Some((*leg, self.clock.started + timer.next_deadline()?)))
                .min_by_key(|(_, at)| *at);
            tokio::select! {
                event = next_leg_event(&mut self.agent) => {
                    if let Some(e) = self.leg_event(CallLeg::Agent, event) {
                        return Wake::Event(e);
                    }
                }
                event = next_leg_event(&mut self.customer) => {
                    if let Some(e) = self.leg_event(CallLeg::Customer, event) {
                        return Wake::Event(e);
                    }
                }
                () = sleep_until_due(next_session) => {
                    let Some((leg, _)) = next_session else { continue };
                    let now = self.clock.started.elapsed();
                    match self.session_timers.get_mut(&leg).and_then(|timer| timer.on_deadline(now)) {
                        Some(SessionDue::Refresh) => self.refresh(leg),
                        Some(SessionDue::Expired) => {
                            tracing::info!(?leg, "the far end did not refresh the session: it has expired");
                            return Wake::Event(CallEvent::SessionRefreshFailed { leg, code: 408 });
                        }
                        None => {}
                    }
                }
                Some((leg, result)) = self.refresh_results.1.recv() => match result {
                    Ok(()) => tracing::debug!(?leg, "session refreshed"),
                    Err(code) => {
                        tracing::info!(?leg, code, "session refresh refused");
                        return Wake::Event(CallEvent::SessionRefreshFailed { leg, code });
                    }
                },
                () = sleep_until_deadline(machine_deadline) => return Wake::Deadline,
                Some(media_event) = media_events.recv() => match media_event {
                    MediaEvent::Inactive(leg) => {
                        tracing::info!(?leg, "no RTP from a leg");
                        let leg = match leg {
                            MediaLeg::Agent => CallLeg::Agent,
                            MediaLeg::Customer => CallLeg::Customer,
                        };
                        return Wake::Event(CallEvent::MediaTimeout { leg });
                    }
                    MediaEvent::WebRtcConnected(law) => {
                        tracing::info!(?law, "the agent's browser has its media up");
                        self.agent_law = law;
                        if self.softphone == SoftphoneLeg::Offered {
                            self.softphone = SoftphoneLeg::Connected;
                            return Wake::Event(CallEvent::Answered { leg: CallLeg::Agent });
                        }
                    }
                    MediaEvent::WebRtcGone(because) => {
                        tracing::info!(?because, "the agent's browser media is gone");
                        if let Some(event) = self.softphone_gone() {
                            return Wake::Event(event);
                        }
                    }
                },
                command = control.recv() => match command {
                    Some(Control::HangUp(cause)) => return Wake::Event(CallEvent::HangUpRequested { cause }),
                    Some(Control::CreditRenewed(paid_minutes)) => return Wake::CreditRenewed(paid_minutes),
                    Some(Control::Hold(on_hold)) => return Wake::Event(CallEvent::HoldRequested { on_hold }),
                    Some(Control::RecordingPaused(paused)) => self.media.set_recording_paused(paused),
                    Some(Control::SoftphoneOffer { offer, answer }) => {
                        let ringing = matches!(self.request.agent_phone, AgentPhone::Softphone { .. })
                            && self.softphone == SoftphoneLeg::Ringing;
                        if ringing {
                            tracing::info!("the agent's browser answers");
                            self.softphone = SoftphoneLeg::Offered;
                            let media = self.media.offer_webrtc(offer, self.shared.sip.public_ip());
                            let _ = answer.send(Ok(media));
                        } else {
                            let _ = answer.send(Err(SoftphoneError::NotRinging));
                        }
                    }
                    Some(Control::SoftphoneDeclined) => {
                        // Also after an offer the relay or the page could not take: the page gives up.
                        if matches!(self.softphone, SoftphoneLeg::Ringing | SoftphoneLeg::Offered) {
                            tracing::info!("the agent's browser declined the call");
                            self.softphone = SoftphoneLeg::Gone;
                            return Wake::Event(CallEvent::Failed { leg: CallLeg::Agent, code: 603 });
                        }
                    }
                    Some(Control::SoftphoneGone) => {
                        tracing::info!("the agent's softphone page went away");
                        if let Some(event) = self.softphone_gone() {
                            return Wake::Event(event);
                        }
                    }
                    Some(Control::Digit { event, duration }) => {
                        // The agent's keypad in the toolbar: the customer hears it as RFC 4733
                        // events, as a digit the agent's phone sends by INFO.
                        tracing::debug!(event, "digit from the agent's toolbar");
                        self.media.send_digit(MediaLeg::Customer, event, duration);
                    }
                    None => std::future::pending::<()>().await,
                },
            }
        }
    }

    /// The agent's browser is gone (its page or its media): an agent who answered hung up;
    /// one still ringing could not be reached. Told once.
    fn softphone_gone(&mut self) -> Option<CallEvent> {
        if !matches!(self.request.agent_phone, AgentPhone::Softphone { .. }) {
            return None;
        }
        let was = std::mem::replace(&mut self.softphone, SoftphoneLeg::Gone);
        match was {
            SoftphoneLeg::Connected => Some(CallEvent::HungUp { leg: CallLeg::Agent }),
            SoftphoneLeg::Ringing | SoftphoneLeg::Offered => Some(CallEvent::Failed {
                leg: CallLeg::Agent,
                code: 0,
            }),
            SoftphoneLeg::Gone => None,
        }
    }

    /// Tells the agent's softphone page the call is over for it.
    fn end_softphone(&self) {
        if let AgentPhone::Softphone { aor } = &self.request.agent_phone {
            self.shared.softphones.ended(aor, &self.request.unique_id);
        }
    }

    /// Tells the service how a restarted server would end `leg` now (it keeps it with the
    /// call): sent before the event's progress, so it is written with it.
    fn report_ending(&self, leg: CallLeg) {
        let sip_leg = match leg {
            CallLeg::Agent => self.agent.as_ref(),
            CallLeg::Customer => self.customer.as_ref(),
        };
        if let Some(ending) = sip_leg.and_then(Leg::ending) {
            let _ = self.updates.send(CallUpdate::LegEnding { leg, ending });
        }
    }

    /// Turns a leg's SIP event into a call event, taking the media address from its SDP.
    fn leg_event(&mut self, leg: CallLeg, event: LegEvent) -> Option<CallEvent> {
        let media_leg = match leg {
            CallLeg::Agent => MediaLeg::Agent,
            CallLeg::Customer => MediaLeg::Customer,
        };
        match event {
            LegEvent::Provisional { code, sdp } => {
                let early_media = sdp
                    .as_deref()
                    .and_then(|body| self.take_remote_media(media_leg, body))
                    .is_some();
                tracing::debug!(?leg, code, early_media, "provisional");
                self.report_ending(leg);
                Some(CallEvent::Provisional { leg, early_media })
            }
            LegEvent::Answered { sdp, session_timer } => {
                self.session_timers.insert(
                    leg,
                    LegSessionTimer::answered(session_timer, self.clock.started.elapsed()),
                );
                match sdp.as_deref().and_then(|body| self.take_remote_media(media_leg, body)) {
                    Some(law) if leg == CallLeg::Agent => self.agent_law = law,
                    Some(_) => {}
                    None => tracing::warn!(?leg, "answer without usable SDP: no media will flow"),
                }
                self.report_ending(leg);
                Some(CallEvent::Answered { leg })
            }
            LegEvent::Failed { code } => Some(CallEvent::Failed { leg, code }),
            LegEvent::RemoteBye | LegEvent::Ended => Some(CallEvent::HungUp { leg }),
            LegEvent::Renegotiate(mut renegotiation) => {
                // A re-INVITE or UPDATE of the far end refreshes the session (RFC 4028 §10).
                let now = self.clock.started.elapsed();
                if self
                    .session_timers
                    .entry(leg)
                    .or_default()
                    .far_end_request(renegotiation.session_expires, now)
                {
                    renegotiation.keep_refreshing();
                }
                self.renegotiate(media_leg, renegotiation);
                None
            }
            LegEvent::AnswerInAck { sdp } => {
                if let Some(law) = self.take_remote_media(media_leg, &sdp) {
                    tracing::info!(?leg, ?law, "answer in the ACK of a re-INVITE taken");
                }
                None
            }
            LegEvent::Digit(digit) => {
                // The other leg hears it as RFC 4733 events (the relay sends them only while
                // the call is bridged).
                let to = match media_leg {
                    MediaLeg::Agent => MediaLeg::Customer,
                    MediaLeg::Customer => MediaLeg::Agent,
                };
                tracing::debug!(
                    ?leg,
                    event = digit.event,
                    duration_ms = digit.duration_ms,
                    "digit by INFO"
                );
                self.media
                    .send_digit(to, digit.event, Duration::from_millis(u64::from(digit.duration_ms)));
                None
            }
        }
    }

    /// Sends the leg's session refresh from its own task (the answer comes back as an event; its
    /// timer has scheduled the next one).
    fn refresh(&mut self, leg: CallLeg) {
        let handle = match leg {
            CallLeg::Agent => self.agent.as_ref(),
            CallLeg::Customer => self.customer.as_ref(),
        }
        .map(Leg::refresh_handle);
        let Some(handle) = handle else {
            if let Some(timer) = self.session_timers.get_mut(&leg) {
                timer.stop();
            }
            return;
        };
        // A re-INVITE refresh repeats what we last said, so nothing changes.
        let ours = match leg {
            CallLeg::Agent => self.agent_description.as_ref(),
            CallLeg::Customer => self.customer_description.as_ref(),
        }
        .map(|description| description.last.clone().into_bytes());
        let results = self.refresh_results.0.clone();
        tokio::spawn(async move {
            let _ = results.send((leg, handle.refresh(ours).await));
        });
    }

    /// Answers a far end's re-INVITE or UPDATE here: hold and resume, a moved stream (the
    /// relay follows it), a session refresh.
    fn renegotiate(&mut self, leg: MediaLeg, renegotiation: Renegotiation) {
        let ip = self.shared.sip.public_ip();
        let description = match leg {
            MediaLeg::Agent => self.agent_description.as_mut(),
            MediaLeg::Customer => self.customer_description.as_mut(),
        };
        let Some(description) = description else {
            renegotiation.refuse();
            return;
        };
        let Some(body) = renegotiation.offer.clone() else {
            // A refresh without a description; a re-INVITE without one gets ours as an offer.
            let ours = renegotiation.is_invite.then(|| description.last.clone().into_bytes());
            tracing::debug!(?leg, "session refreshed");
            renegotiation.accept(ours);
            return;
        };
        let remote = match sdp::parse(&body) {
            Ok(remote) => remote,
            Err(e) => {
                tracing::info!(?leg, error = %e, "re-offer refused");
                renegotiation.refuse();
                return;
            }
        };
        let Some(relay_leg) = remote.relay_leg() else {
            tracing::info!(?leg, "re-offer without G.711 refused");
            renegotiation.refuse();
            return;
        };
        tracing::info!(?leg, address = %remote.address, direction = ?remote.direction, "re-offer answered");
        self.media.set_remote(leg, relay_leg);
        let answer = description.answer(ip, relay_leg.law, remote.direction.answered());
        renegotiation.accept(Some(answer.into_bytes()));
    }

    fn take_remote_media(&mut self, leg: MediaLeg, body: &[u8]) -> Option<Law> {
        match sdp::parse(body) {
            Ok(remote) => {
                let relay_leg = remote.relay_leg()?;
                self.media.set_remote(leg, relay_leg);
                Some(relay_leg.law)
            }
            Err(e) => {
                tracing::warn!(?leg, error = %e, "unusable SDP");
                None
            }
        }
    }

    fn execute(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::InviteAgent => self.invite_agent(),
                Effect::InviteCustomer => self.invite_customer(),
                Effect::Cancel(CallLeg::Agent) | Effect::Bye(CallLeg::Agent)
                    if matches!(self.request.agent_phone, AgentPhone::Softphone { .. }) =>
                {
                    self.end_softphone();
                }
                Effect::Cancel(leg) | Effect::Bye(leg) => {
                    let handle = match leg {
                        CallLeg::Agent => self.agent.as_ref().map(Leg::hang_up_handle),
                        CallLeg::Customer => self.customer.as_ref().map(Leg::hang_up_handle),
                    };
                    if let Some(handle) = handle {
                        // Hang-ups run beside the call task so that a peer slow to answer a BYE
                        // delays nothing; they are joined before the task ends.
                        self.hang_ups.spawn(async move { handle.hang_up().await });
                    }
                }
                Effect::RelayEarlyMedia => self.media.set_mode(RelayMode::EarlyMedia),
                Effect::PlayRingback => self.media.set_mode(RelayMode::Ringback),
                Effect::Bridge => {
                    // Recording from the bridge starts here (at once before the first bridged
                    // packet, so the announcement and the parties' first words are in it).
                    if self.request.recording.is_some() {
                        self.media.start_recording();
                    }
                    self.media.set_mode(RelayMode::Bridged);
                }
                Effect::PutOnHold => self.media.set_mode(RelayMode::OnHold),
                Effect::Emit(progress) => {
                    let from_answer = self
                        .request
                        .recording
                        .as_ref()
                        .is_some_and(|plan| plan.from == RecordFrom::AgentAnswer);
                    if progress == Progress::AgentAnswered && from_answer {
                        self.media.start_recording();
                    }
                    let _ = self.updates.send(CallUpdate::Progress {
                        progress,
                        at_ms: self.clock.now_ms(),
                    });
                }
                Effect::RenewCredit { paid_minutes } => {
                    let _ = self.updates.send(CallUpdate::RenewCredit { paid_minutes });
                }
                Effect::Finished(_) => {}
            }
        }
    }

    fn invite_agent(&mut self) {
        let shared = self.shared.clone();
        if let AgentPhone::Softphone { aor } = &self.request.agent_phone {
            // The page rings by itself; its offer is its answer.
            let rung = shared
                .softphones
                .ring(aor, &self.request.unique_id, &self.request.customer_number);
            self.pending.push_back(if rung {
                CallEvent::Provisional {
                    leg: CallLeg::Agent,
                    early_media: false,
                }
            } else {
                tracing::info!(%aor, "no page is attached as the agent's softphone");
                CallEvent::AgentUnroutable
            });
            return;
        }
        let public_ip = shared.sip.public_ip();
        let description = LocalDescription::offer(public_ip, self.media.agent_port(), &[Law::Mu, Law::A]);
        let offer = description.last.clone();
        self.agent_description = Some(description);
        let spec = match &self.request.agent_phone {
            AgentPhone::Extension { aor } => {
                let Some(registration) = shared.sip.registration(aor) else {
                    tracing::info!(%aor, "the agent's extension is not registered");
                    self.pending.push_back(CallEvent::AgentUnroutable);
                    return;
                };
                LegSpec {
                    request_uri: registration.contact,
                    destination: registration.destination,
                    transport: registration.transport,
                    // An extension sees who it is about to talk to.
                    from_user: self.request.customer_number.clone(),
                    from_display: None,
                    asserted_identity: None,
                    sdp_offer: offer.into_bytes(),
                    credential: None,
                    allowed_sources: None,
                }
            }
            AgentPhone::Softphone { .. } => return,
            AgentPhone::Telephone { number } => {
                // A carrier only passes the enterprise's own numbers.
                let shown = self.request.agent_caller_id.as_ref().unwrap_or(&self.request.caller_id);
                self.trunk_leg(&self.request.trunk, number, shown, offer.into_bytes())
            }
        };
        match shared.sip.invite(spec) {
            Ok(leg) => self.agent = Some(leg),
            Err(e) => {
                tracing::warn!(error = %e, "cannot call the agent");
                self.pending.push_back(CallEvent::Failed {
                    leg: CallLeg::Agent,
                    code: 503,
                });
            }
        }
    }

    fn invite_customer(&mut self) {
        let public_ip = self.shared.sip.public_ip();
        // The law the agent's phone chose first, so that no transcoding is needed if the
        // carrier can take it.
        let laws = [self.agent_law, self.agent_law.other()];
        let description = LocalDescription::offer(public_ip, self.media.customer_port(), &laws);
        let offer = description.last.clone();
        self.customer_description = Some(description);
        let number = self.request.customer_number.clone();
        let route = self.request.customer_route(self.customer_attempts);
        if self.customer_attempts > 0 {
            tracing::info!(trunk = %route.name, attempt = self.customer_attempts + 1, "calling the customer through the next trunk");
            let _ = self.updates.send(CallUpdate::CustomerTrunk {
                trunk: route.name.clone(),
            });
        }
        self.customer_attempts += 1;
        let spec = self.trunk_leg(route, &number, &self.request.caller_id, offer.into_bytes());
        match self.shared.sip.invite(spec) {
            Ok(leg) => self.customer = Some(leg),
            Err(e) => {
                tracing::warn!(error = %e, "cannot call the customer");
                self.pending.push_back(CallEvent::Failed {
                    leg: CallLeg::Customer,
                    code: 503,
                });
            }
        }
    }

    fn trunk_leg(&self, trunk: &crate::TrunkRoute, number: &str, caller_id: &str, sdp_offer: Vec<u8>) -> LegSpec {
        let transport = match trunk.transport {
            SipTransport::Udp => "",
            SipTransport::Tcp => ";transport=tcp",
        };
        let dialled = trunk.number_format.apply_to_text(number);
        let caller_id = trunk.caller_id_format.apply_to_text(caller_id);
        LegSpec {
            request_uri: format!("sip:{dialled}@{}{transport}", trunk.host),
            destination: trunk.address,
            transport: trunk.transport,
            from_user: caller_id.clone(),
            from_display: None,
            asserted_identity: Some(caller_id),
            sdp_offer,
            credential: trunk.credential.clone(),
            allowed_sources: Some(if trunk.sources.is_empty() {
                vec![ipnet::IpNet::from(trunk.address.ip())]
            } else {
                trunk.sources.clone()
            }),
        }
    }

    /// After the outcome: stop the media, report, then let the legs' hang-ups and last
    /// messages drain (bounded by the SIP transaction timeout) before the task ends.
    async fn finish(mut self, machine: &CallMachine, outcome: Option<crate::Outcome>, unique_id: &str) {
        let customer_trunk = self
            .customer_attempts
            .checked_sub(1)
            .map(|last| self.request.customer_route(last).name.clone());
        self.end_softphone();
        let media = self.media.finish().await;
        if let Some(outcome) = outcome {
            let report = CallReport {
                unique_id: unique_id.to_owned(),
                outcome,
                record: machine.record().clone(),
                media,
                customer_trunk,
            };
            let _ = self.updates.send(CallUpdate::Finished(Box::new(report)));
        }
        let drain = self.shared.config.sip.t1 * 64 + Duration::from_secs(1);
        let legs_done = async {
            while self.hang_ups.join_next().await.is_some() {}
            for leg in [&mut self.agent, &mut self.customer].into_iter().flatten() {
                while leg.next_event().await.is_some() {}
            }
        };
        if tokio::time::timeout(drain, legs_done).await.is_err() {
            tracing::warn!("a leg did not end within the SIP transaction timeout");
            self.hang_ups.abort_all();
        }
    }
}
