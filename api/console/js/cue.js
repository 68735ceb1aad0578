// "Know the moment a new SOS lands": a tone drawn with the Web Audio API (no sound file to
// fetch), and the same news said to screen readers. Browsers let a page make sound only after
// the user has touched it, so unlock() is called from the first click or key press.

const STORAGE_KEY = "anxin.sound";
// Two rising-falling tones, three times: about 1.5 s, audible over a call centre's noise.
const TONES = [
  [880, 0.0],
  [660, 0.18],
  [880, 0.5],
  [660, 0.68],
  [880, 1.0],
  [660, 1.18],
];
const TONE_S = 0.16;

export class Cue {
  constructor(announcer) {
    this.announcer = announcer;
    this.context = null;
    this.enabled = readEnabled();
  }

  unlock() {
    const AudioContextClass = window.AudioContext ?? window.webkitAudioContext;
    if (!AudioContextClass) return;
    this.context ??= new AudioContextClass();
    if (this.context.state === "suspended") this.context.resume().catch(() => {});
  }

  setEnabled(enabled) {
    this.enabled = enabled;
    try {
      localStorage.setItem(STORAGE_KEY, enabled ? "on" : "off");
    } catch {
      // kept for this page only
    }
  }

  /** A new critical alert: the tone (when on) and the words for screen readers. */
  newCritical(text) {
    // Cleared first so that the same words twice are announced twice.
    this.announcer.textContent = "";
    requestAnimationFrame(() => {
      this.announcer.textContent = text;
    });
    if (this.enabled) this.play();
  }

  play() {
    this.unlock();
    const context = this.context;
    if (!context) return;
    const start = context.currentTime + 0.02;
    for (const [frequency, offset] of TONES) {
      const oscillator = context.createOscillator();
      const gain = context.createGain();
      oscillator.type = "sine";
      oscillator.frequency.value = frequency;
      const at = start + offset;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.4, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + TONE_S);
      oscillator.connect(gain).connect(context.destination);
      oscillator.start(at);
      oscillator.stop(at + TONE_S + 0.02);
    }
  }
}

function readEnabled() {
  try {
    return localStorage.getItem(STORAGE_KEY) !== "off";
  } catch {
    return true;
  }
}
