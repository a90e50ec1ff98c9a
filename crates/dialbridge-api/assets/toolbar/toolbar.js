// dialbridge agent toolbar: an ES module a CRM page imports (no build step, no dependencies).
//
//   import { setup } from "https://dialbridge.example/toolbar/toolbar.js";
//   const toolbar = setup({ server: "https://dialbridge.example", token, container, lang: "zh-CN" });
//   toolbar.on("status", (data) => …);
//   await toolbar.login({ bindTel: "801", type: 2 });
//   await toolbar.previewOutcall({ tel: "13800138000", userField: "order-17" });
//
// Every method returns a promise that resolves with the server's data, or rejects with an
// Error whose `code` is the legacy code (PreviewOutcall's `res`) and whose message says it in
// words. Events: status, previewOutcallStart, previewOutcallRinging, previewOutcallBridge,
// hold, unhold, hangup, kickout, breakLine, snapshot, logout, refused; with the softphone
// (`login({type: 3, bindTel: cno})`: this page is the agent's phone) also incomingCall,
// softphoneConnected and callEnded.

const TEXT = {
  "zh-CN": {
    offline: "离线", idle: "空闲", paused: "置忙", calling: "呼叫中", ringing: "响铃", talking: "通话", wrapup: "整理",
    onHold: "保持", hold: "保持", unhold: "取回", pauseRecording: "暂停录音", resumeRecording: "恢复录音",
    pleaseWait: "呼叫中，请稍后", dial: "呼叫", hangUp: "挂断", cancel: "取消", pause: "置忙", unpause: "置闲",
    logout: "退出", number: "客户号码", wrapupLeft: "整理剩余", seconds: "秒", lost: "连接已断开，正在重连…",
    kicked: "已在别处登录", phoneUnavailable: "话机未注册", mute: "静音", unmute: "取消静音",
    softphoneFailed: "软电话无法接听", microphone: "需要麦克风权限", inState: "已持续", keypad: "拨号盘",
    pauseReason: "置忙原因", prolong: "延长整理", lastCalls: "最近通话",
    cdr28: "双方接听", cdr21: "客户未接听", cdr22: "客户呼叫失败", cdr24: "座席未接听",
    agentTokenNeeded: "工具条需要座席的令牌（管理员令牌只能旁观）", revoked: "会话已失效，请重新登录",
  },
  en: {
    offline: "Offline", idle: "Idle", paused: "Paused", calling: "Calling", ringing: "Ringing", talking: "Talking",
    onHold: "On hold", hold: "Hold", unhold: "Resume", pauseRecording: "Pause recording",
    resumeRecording: "Resume recording",
    wrapup: "Wrap-up", pleaseWait: "Calling, please wait", dial: "Dial", hangUp: "Hang up", cancel: "Cancel",
    pause: "Pause", unpause: "Ready", logout: "Log out", number: "Customer number", wrapupLeft: "Wrap-up left",
    seconds: "s", lost: "Connection lost, reconnecting…", kicked: "Logged in elsewhere",
    phoneUnavailable: "Phone not registered", inState: "for", keypad: "Keypad", mute: "Mute", unmute: "Unmute",
    softphoneFailed: "The softphone could not answer", microphone: "The microphone is needed",
    pauseReason: "Pause reason", prolong: "More wrap-up time", lastCalls: "Last calls",
    cdr28: "answered", cdr21: "customer did not answer", cdr22: "customer not reached", cdr24: "agent did not answer",
    agentTokenNeeded: "The toolbar needs an agent's token (an admin's only observes)",
    revoked: "The session was revoked: log in again",
  },
};

// The legacy codes in words (PreviewOutcall's `res`; the session requests' `code`).
const CODES = {
  "zh-CN": {
    "0": "没有通话", "1": "座席未接听", "2": "参数错误", "3": "认证失败", "4": "座席已停用", "5": "余额不足", "6": "未开通外呼",
    "7": "号码不正确或不允许呼叫", "8": "座席不存在", "9": "座席话机不可用", "10": "系统繁忙", "11": "号码在黑名单中",
    "12": "座席未在线", "13": "座席正在通话", "14": "外显号码不正确", "31": "话机已被其他座席绑定", "32": "话机号码不正确",
    "33": "正在呼叫中", "40": "号码呼叫次数超限", "41": "企业已停用", "99": "系统错误",
  },
  en: {
    "0": "no call", "1": "the agent did not answer", "2": "bad parameters", "3": "authentication failed", "4": "agent disabled",
    "5": "balance exhausted", "6": "outbound calling not enabled", "7": "bad number, or not allowed",
    "8": "no such agent", "9": "the agent's phone is not reachable", "10": "busy, try again",
    "11": "the number is blacklisted", "12": "agent offline", "13": "agent in a call", "14": "bad caller id",
    "31": "the phone is bound to another agent", "32": "bad phone number", "33": "already calling",
    "40": "number called too often", "41": "enterprise disabled", "99": "internal error",
  },
};

// The colour each state is drawn in (the tests read the badge's pixels against these).
export const STATE_COLOURS = {
  offline: "#6b7280", idle: "#16a34a", paused: "#d97706", calling: "#2563eb", ringing: "#7c3aed",
  talking: "#dc2626", wrapup: "#0891b2", onHold: "#be185d",
};

/// Seconds of wrap-up left at `now` (ms): the status said how many were left when it arrived,
/// and no status comes when they run out.
export function wrapupLeft(status, now) {
  if (!status || status.pauseDescription !== "pauseWrapup") return 0;
  const left = Number(status.wrapupTime) - Math.floor((now - (status.receivedAt || now)) / 1000);
  return Math.max(0, left);
}

/// How long past a wrap-up's end the toolbar waits for the server's word on where the agent went
/// before it guesses idle (a status lost, a server that restarted).
const WRAPUP_END_GRACE_MS = 5000;

/// The state a toolbar shows at `now`, from the agent's last status and what it knows of its
/// call.
export function viewState(status, call, now = Date.now()) {
  if (!status || status.loginStatus === "offline") return "offline";
  if (status.deviceStatus === "ringing") return "ringing";
  if (status.deviceStatus === "busy") {
    if (!call || call.bridged !== status.uniqueId) return "calling";
    return call.onHold ? "onHold" : "talking";
  }
  if (call && call.pending) return "calling";
  // Until the server says where the agent goes after it (idle, or a pause asked for during the
  // call): it tells the wrap-up's end.
  if (status.pauseDescription === "pauseWrapup") {
    const over = (status.receivedAt || now) + Number(status.wrapupTime) * 1000 + WRAPUP_END_GRACE_MS;
    return now < over ? "wrapup" : "idle";
  }
  if (status.loginStatus === "pause") return "paused";
  return "idle";
}

/// Whether a call may be placed in `state` (the seed: only idle or wrap-up, one click one call).
export function mayDial(state) {
  return state === "idle" || state === "wrapup";
}

class Toolbar {
  constructor({ server, token, lang }) {
    this.server = (server || location.origin).replace(/\/$/, "");
    this.token = token;
    this.lang = TEXT[lang] ? lang : "zh-CN";
    this.handlers = new Map();
    this.pending = new Map();
    this.nextId = 1;
    this.seq = null;
    this.status = null;
    this.call = null;
    this.loggedIn = null;
    this.closed = false;
    this.backoff = 500;
    this.connect();
  }

  text(key) { return TEXT[this.lang][key]; }
  words(code) { return CODES[this.lang][code] || code; }

  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(handler);
    return this;
  }

  emit(event, data) {
    for (const handler of this.handlers.get(event) || []) {
      try { handler(data); } catch (e) { console.error(e); }
    }
  }

  connect() {
    const ws = this.server.replace(/^http/, "ws");
    const since = this.seq === null ? "" : `&since=${this.seq}`;
    this.socket = new WebSocket(`${ws}/api/v1/events?token=${encodeURIComponent(this.token)}${since}`);
    this.socket.onopen = () => {
      // A reconnecting toolbar takes its session back, unless another toolbar took it
      // meanwhile (then it is kicked out) or the agent went offline (a CRM logged it out).
      if (this.session === undefined) return;
      // Commands sent meanwhile wait for it (the server takes them only from a logged-in socket).
      this.resuming = this.send("login", { resume: this.session })
        .then(() => this.emit("resumed", {}), (error) => {
          if (error.code === "kickout") this.receive({ type: "kickout", data: { reason: "logged in elsewhere" } });
          else { this.loggedIn = null; this.session = undefined; }
        })
        .finally(() => { this.resuming = null; });
    };
    this.socket.onmessage = (message) => this.receive(JSON.parse(message.data));
    this.socket.onclose = (close) => {
      // The server ends a softphone call whose page lost its socket: its media goes too.
      this.endSoftphone();
      for (const { reject } of this.pending.values()) reject(this.failure("10"));
      this.pending.clear();
      if (this.closed || close.code === 4002) return;
      if (close.code === 4001) {
        // The credential was revoked (password changed, agent disabled or kicked by an operator).
        this.closed = true;
        this.emit("refused", { message: this.text("revoked") });
        return;
      }
      this.emit("breakLine", { code: close.code });
      // Back-off with jitter, reset only once a snapshot arrives (a server that closes right
      // after the upgrade is not hammered).
      setTimeout(() => this.connect(), this.backoff * (0.75 + Math.random() / 2));
      this.backoff = Math.min(this.backoff * 2, 15000);
    };
  }

  receive(message) {
    if (message.seq !== undefined && message.seq !== null) this.seq = Math.max(this.seq ?? 0, message.seq);
    switch (message.type) {
      case "reply": {
        const waiting = this.pending.get(message.id);
        if (!waiting) return;
        this.pending.delete(message.id);
        if (message.ok) waiting.resolve(message.data || {});
        else waiting.reject(this.failure(message.code, message.message));
        return;
      }
      case "snapshot":
        this.backoff = 500;
        if (message.viewer !== "agent") {
          // An admin's token observes the whole enterprise: it is no agent's toolbar.
          this.close();
          this.emit("refused", { message: this.text("agentTokenNeeded") });
          return;
        }
        this.status = (message.agents || [])[0] || null;
        this.snapshotSeq = message.seq;
        if (this.status) {
          this.status.receivedAt = Date.now();
          // A page loaded during a call shows it as it is.
          if (this.status.bridged) {
            this.call = {
              bridged: this.status.uniqueId,
              onHold: this.status.onHold,
              recordingPaused: this.status.recordingPaused,
            };
          }
        }
        this.pauseReasons = message.pauseReasons || [];
        this.emit("snapshot", message);
        this.emit("status", this.status);
        return;
      case "status":
        // A reconnect replays what it missed after the snapshot was taken: older than it.
        if (message.seq <= this.snapshotSeq) return;
        this.status = { ...message.data, receivedAt: Date.now() };
        if (this.call && this.call.pending && message.data.deviceStatus !== "idle") this.call.pending = false;
        this.emit("status", message.data);
        return;
      case "previewOutcallBridge":
        if (message.seq <= this.snapshotSeq) return;
        if (!this.call || this.call.bridged !== message.data.uniqueId) {
          this.call = { ...(this.call || {}), bridged: message.data.uniqueId, onHold: false };
        }
        this.emit(message.type, message.data);
        this.emit("status", this.status);
        return;
      case "hold":
      case "unhold":
        if (message.seq <= this.snapshotSeq) return;
        if (this.call && this.call.bridged === message.data.uniqueId) this.call.onHold = message.type === "hold";
        this.emit(message.type, message.data);
        this.emit("status", this.status);
        return;
      case "incomingCall":
        this.emit(message.type, message.data);
        this.ring(message.data);
        return;
      case "callEnded":
        this.endSoftphone(message.data.uniqueId);
        this.emit(message.type, message.data);
        return;
      case "kickout":
        // Another toolbar logged this agent in: this one is done (no reconnecting).
        this.endSoftphone();
        this.closed = true;
        this.loggedIn = null;
        this.session = undefined;
        this.status = null;
        this.call = null;
        this.emit("kickout", message.data);
        this.emit("status", null);
        return;
      case "hangup":
        this.endSoftphone(message.data && message.data.cdr_main_unique_id);
        this.emit(message.type, message.data);
        return;
      default:
        this.emit(message.type, message.data);
    }
  }

  failure(code, message) {
    const error = new Error(this.words(code) + (message ? ` (${message})` : ""));
    error.code = code;
    return error;
  }

  send(command, args = {}) {
    if (this.resuming && command !== "login") return this.resuming.then(() => this.send(command, args));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (!this.socket || this.socket.readyState !== WebSocket.OPEN) {
        reject(this.failure("10", "not connected"));
        return;
      }
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ id, command, args }));
    });
  }

  /// Goes online on a phone (`type` 1 telephone, 2 extension, 3 this page as a softphone with `bindTel` the cno, 4 remote phone), or joins the
  /// agent's state if a CRM brought it online already. A second toolbar login kicks this one.
  async login(args = {}) {
    const data = await this.send("login", args);
    this.loggedIn = args;
    this.session = data.session;
    return data;
  }
  /// Goes offline (refused during a call); then emits `logout`.
  async logout() {
    const data = await this.send("logout");
    this.loggedIn = null;
    this.session = undefined;
    this.emit("logout", data);
    return data;
  }
  pause({ pauseDescription } = {}) { return this.send("pause", { pauseDescription }); }
  unpause() { return this.send("unpause"); }
  changeBindTel(args) { return this.send("changeBindTel", args); }
  previewOutcallCancel() { return this.send("previewOutcallCancel"); }
  /// More time for the running wrap-up (30 s unless said).
  prolongWrapup({ seconds = 30 } = {}) { return this.send("prolongWrapup", { seconds }); }
  /// The agent's last calls, newest first: `{calls: [{uniqueId, customerNumber, requestedAt,
  /// status, bridgeSeconds}]}` (`status` 28 bridged, 21/22 customer not reached, 24 agent).
  lastCalls({ limit = 10 } = {}) { return this.send("lastCalls", { limit }); }
  /// The softphone: this page answers the call it is rung with, after ringing `autoAnswerMs`,
  /// with the microphone, offering its WebRTC session; the server answers it (ICE-lite, G.711).
  async ring({ uniqueId, autoAnswerMs = 0, iceServers = [] }) {
    this.endSoftphone();
    const phone = { uniqueId, ringing: this.ringTone() };
    this.softphone = phone;
    await new Promise((resolve) => setTimeout(resolve, autoAnswerMs));
    if (this.softphone !== phone) return;
    this.stopRinging(phone);
    // The call may end while the page waits on the browser: what it holds then is let go.
    const gone = () => {
      if (this.softphone === phone) return false;
      if (phone.pc) phone.pc.close();
      if (phone.microphone) for (const track of phone.microphone.getTracks()) track.stop();
      return true;
    };
    try {
      phone.microphone = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      if (gone()) return;
      phone.pc = new RTCPeerConnection({ iceServers });
      for (const track of phone.microphone.getAudioTracks()) phone.pc.addTrack(track, phone.microphone);
      phone.remote = new MediaStream();
      phone.pc.ontrack = (event) => {
        phone.remote.addTrack(event.track);
        phone.speaker.srcObject = phone.remote;
        phone.speaker.play().catch(() => {});
      };
      phone.speaker = new Audio();
      phone.speaker.autoplay = true;
      phone.pc.onconnectionstatechange = () => {
        if (phone.pc.connectionState === "connected") this.emit("softphoneConnected", { uniqueId });
      };
      await phone.pc.setLocalDescription(await phone.pc.createOffer());
      if (gone()) return;
      const { sdp } = await this.send("answer", { uniqueId, sdp: phone.pc.localDescription.sdp });
      if (gone()) return;
      await phone.pc.setRemoteDescription({ type: "answer", sdp });
    } catch (error) {
      if (gone()) return;
      this.send("decline", { uniqueId }).catch(() => {});
      this.endSoftphone(uniqueId);
      const words = error && error.name === "NotAllowedError" ? this.text("microphone") : this.text("softphoneFailed");
      this.emit("refused", { message: `${words} (${error.message || error})` });
    }
  }

  /// A soft two-tone ring in the page while the softphone rings (no sound file shipped).
  ringTone() {
    try {
      const context = new AudioContext();
      const gain = context.createGain();
      gain.gain.value = 0.05;
      gain.connect(context.destination);
      for (const hz of [440, 480]) {
        const tone = context.createOscillator();
        tone.frequency.value = hz;
        tone.connect(gain);
        tone.start();
      }
      return context;
    } catch {
      return null;
    }
  }

  stopRinging(phone) {
    if (phone.ringing) phone.ringing.close().catch(() => {});
    phone.ringing = null;
  }

  /// Hangs up the softphone's media (the call ended, or another one replaces it).
  endSoftphone(uniqueId) {
    const phone = this.softphone;
    if (!phone || (uniqueId !== undefined && phone.uniqueId !== uniqueId)) return;
    this.softphone = null;
    this.stopRinging(phone);
    if (phone.pc) phone.pc.close();
    if (phone.microphone) for (const track of phone.microphone.getTracks()) track.stop();
    if (phone.speaker) phone.speaker.srcObject = null;
  }

  /// Mutes the softphone's microphone (the customer hears silence), and back.
  mute(muted = true) {
    const phone = this.softphone;
    if (!phone || !phone.microphone) return false;
    for (const track of phone.microphone.getAudioTracks()) track.enabled = !muted;
    phone.muted = muted;
    this.emit("status", this.status);
    return true;
  }

  /// Puts the customer on hold (they hear the hold tone; neither hears the other), and back.
  hold() { return this.send("hold"); }
  unhold() { return this.send("unhold"); }
  /// Pauses the call's recording (the file holds silence, its sidecar says where) and resumes
  /// it; refused (code 2) when the call is not recorded.
  pauseRecording() { return this.recordingPaused("pauseRecording", true); }
  resumeRecording() { return this.recordingPaused("resumeRecording", false); }
  recordingPaused(command, paused) {
    return this.send(command).then((data) => {
      if (this.call) this.call.recordingPaused = paused;
      return data;
    });
  }
  /// A key of the keypad, played to the customer during the call.
  dtmf({ digit }) { return this.send("dtmf", { digit }); }
  unlink() { return this.send("unlink"); }

  /// Places a call; refused (code 33) while one is being placed, so a double click places one.
  /// `agentTimeout` / `customerTimeout` (seconds) ring shorter than the enterprise's settings.
  async previewOutcall({ tel, userField = "", clidLeftNumber, agentTimeout, customerTimeout } = {}) {
    if (this.call && this.call.pending) throw this.failure("33");
    this.call = { pending: true };
    this.emit("status", this.status);
    try {
      const data = await this.send("previewOutcall", { tel, userField, clidLeftNumber, agentTimeout, customerTimeout });
      this.call = { pending: true, uniqueId: data.uniqueId };
      return data;
    } catch (error) {
      this.call = null;
      this.emit("status", this.status);
      throw error;
    }
  }

  close() {
    this.closed = true;
    this.endSoftphone();
    if (this.socket) this.socket.close();
    this.emit("closed", {});
  }
}

/// Connects a toolbar with an agent's token; with a `container`, draws the toolbar there.
export function setup({ server, token, container, lang = "zh-CN" } = {}) {
  const toolbar = new Toolbar({ server, token, lang });
  if (container) render(toolbar, container);
  return toolbar;
}

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

/// Draws the toolbar into `container`: the state badge with its time, the dial pad, and the
/// buttons each state allows.
function render(toolbar, container) {
  const t = (key) => toolbar.text(key);
  const badge = element("span", { class: "db-badge", role: "status", "aria-live": "polite" });
  const since = element("span", { class: "db-since" });
  const number = element("input", { class: "db-number", type: "tel", "aria-label": t("number"), placeholder: t("number") });
  const dial = element("button", { class: "db-dial", type: "button", text: t("dial") });
  const cancel = element("button", { class: "db-cancel", type: "button", text: t("cancel") });
  const hangUp = element("button", { class: "db-hangup", type: "button", text: t("hangUp") });
  const hold = element("button", { class: "db-hold", type: "button", text: t("hold") });
  const unhold = element("button", { class: "db-unhold", type: "button", text: t("unhold") });
  const recording = element("button", { class: "db-recording", type: "button", text: t("pauseRecording"), "aria-pressed": "false" });
  const logout = element("button", { class: "db-logout", type: "button", text: t("logout") });
  const mute = element("button", { class: "db-mute", type: "button", text: t("mute"), "aria-pressed": "false" });
  const pause = element("button", { class: "db-pause", type: "button", text: t("pause") });
  const reason = element("select", { class: "db-reason", "aria-label": t("pauseReason") });
  const prolong = element("button", { class: "db-prolong", type: "button", text: t("prolong") });
  const calls = element("ol", { class: "db-calls", "aria-label": t("lastCalls") });
  const unpause = element("button", { class: "db-unpause", type: "button", text: t("unpause") });
  const message = element("div", { class: "db-message", role: "alert" });
  const keypad = element("div", { class: "db-keypad", role: "group", "aria-label": t("keypad") },
    [..."123456789*0#"].map((digit) => element("button", { type: "button", "data-digit": digit, text: digit })));
  const root = element("div", { class: "db-toolbar", "data-state": "offline" }, [
    element("div", { class: "db-head" }, [badge, since]),
    element("form", { class: "db-dialpad" }, [number, dial, cancel, hangUp, hold, unhold, mute, recording]),
    keypad,
    element("div", { class: "db-actions" }, [reason, pause, unpause, prolong, logout]),
    message,
    element("h2", { class: "db-calls-title", text: t("lastCalls") }),
    calls,
  ]);
  container.append(root);

  let shown = null;
  let enteredAt = Date.now();
  const say = (text) => { message.textContent = text || ""; };
  const draw = () => {
    const state = viewState(toolbar.status, toolbar.call);
    if (state !== shown) { shown = state; enteredAt = Date.now(); }
    root.dataset.state = state;
    badge.textContent = t(state);
    badge.style.backgroundColor = STATE_COLOURS[state];
    const seconds = Math.floor((Date.now() - enteredAt) / 1000);
    since.textContent = state === "wrapup"
      ? `${t("wrapupLeft")} ${wrapupLeft(toolbar.status, Date.now())}${t("seconds")}`
      : `${t("inState")} ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    dial.disabled = !mayDial(state);
    cancel.hidden = !(state === "calling" || state === "ringing");
    hangUp.hidden = !(state === "talking" || state === "onHold");
    hold.hidden = state !== "talking";
    unhold.hidden = state !== "onHold";
    recording.hidden = !(state === "talking" || state === "onHold");
    const recordingPaused = Boolean(toolbar.call && toolbar.call.recordingPaused);
    recording.textContent = t(recordingPaused ? "resumeRecording" : "pauseRecording");
    recording.setAttribute("aria-pressed", String(recordingPaused));
    keypad.hidden = state !== "talking";
    const softphone = toolbar.softphone && toolbar.softphone.microphone;
    mute.hidden = !softphone || !(state === "talking" || state === "onHold");
    const muted = Boolean(softphone && toolbar.softphone.muted);
    mute.textContent = t(muted ? "unmute" : "mute");
    mute.setAttribute("aria-pressed", String(muted));
    logout.hidden = !(state === "idle" || state === "paused" || state === "wrapup") || !toolbar.loggedIn;
    // A hint only: the status is as of its last change, and the server refuses a call to a
    // phone it cannot reach (code 9) anyway.
    const unreachable = toolbar.status && toolbar.status.deviceStatus === "unavailable";
    pause.hidden = state !== "idle";
    reason.hidden = state !== "idle" || reason.options.length === 0;
    prolong.hidden = state !== "wrapup";
    unpause.hidden = state !== "paused";
    if (state === "calling" && toolbar.call && toolbar.call.pending) say(t("pleaseWait"));
    else if (unreachable && message.dataset.kind !== "error") say(t("phoneUnavailable"));
    else if (message.dataset.kind !== "error") say("");
  };
  const redraw = setInterval(draw, 250);
  toolbar.on("closed", () => clearInterval(redraw));
  toolbar.on("status", draw);
  toolbar.on("breakLine", () => { message.dataset.kind = "error"; say(t("lost")); });
  toolbar.on("snapshot", () => { message.dataset.kind = ""; draw(); });
  toolbar.on("kickout", () => { message.dataset.kind = "error"; say(t("kicked")); });
  toolbar.on("refused", ({ message: text }) => { message.dataset.kind = "error"; say(text); });
  const act = (promise) => {
    message.dataset.kind = "";
    promise.then(draw, (error) => { message.dataset.kind = "error"; say(error.message); draw(); });
  };
  root.querySelector("form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (dial.disabled) return;
    dial.disabled = true;
    act(toolbar.previewOutcall({ tel: number.value }));
  });
  dial.addEventListener("click", () => root.querySelector("form").requestSubmit());
  cancel.addEventListener("click", () => act(toolbar.previewOutcallCancel()));
  keypad.addEventListener("click", (event) => {
    const digit = event.target.dataset && event.target.dataset.digit;
    if (digit) act(toolbar.dtmf({ digit }));
  });
  hangUp.addEventListener("click", () => act(toolbar.unlink()));
  hold.addEventListener("click", () => act(toolbar.hold()));
  mute.addEventListener("click", () => { toolbar.mute(!(toolbar.softphone && toolbar.softphone.muted)); draw(); });
  unhold.addEventListener("click", () => act(toolbar.unhold()));
  recording.addEventListener("click", () => {
    const paused = Boolean(toolbar.call && toolbar.call.recordingPaused);
    act(paused ? toolbar.resumeRecording() : toolbar.pauseRecording());
  });
  logout.addEventListener("click", () => act(toolbar.logout()));
  pause.addEventListener("click", () => act(toolbar.pause({ pauseDescription: reason.value || "pause" })));
  prolong.addEventListener("click", () => act(toolbar.prolongWrapup({ seconds: 30 })));
  const listCalls = () => toolbar.lastCalls().then(({ calls: last }) => {
    calls.replaceChildren(...last.map((call) => {
      const when = new Date(call.requestedAt).toLocaleTimeString(toolbar.lang);
      const outcome = call.status === null ? t("talking") : t(`cdr${call.status}`) || String(call.status);
      return element("li", { text: `${when} · ${call.customerNumber} · ${outcome}` });
    }));
  }, () => {});
  toolbar.on("snapshot", () => {
    reason.replaceChildren(...toolbar.pauseReasons.map((r) => element("option", { value: r, text: r })));
    listCalls();
  });
  toolbar.on("hangup", listCalls);
  unpause.addEventListener("click", () => act(toolbar.unpause()));
  draw();
}
