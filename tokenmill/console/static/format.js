// Numbers, money, bytes and times as the console shows them.
const integer = new Intl.NumberFormat("en-US");

export const int = (n) => (n === null || n === undefined ? "—" : integer.format(n));

export function num(n, digits = 1) {
  if (n === null || n === undefined) return "—";
  if (n !== 0 && Math.abs(n) < 1) digits = Math.max(digits, 3);
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** Micro-units of USD, exact: "$1.234567" trimmed to at least cents. */
export function money(micros) {
  if (micros === null || micros === undefined) return "—";
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(micros);
  const whole = Math.floor(abs / 1e6);
  let frac = String(abs % 1e6).padStart(6, "0").replace(/0+$/, "");
  if (frac.length < 2) frac = frac.padEnd(2, "0");
  return `${sign}$${integer.format(whole)}.${frac}`;
}

export function dollarsToMicros(text) {
  if (text === "" || text === null || text === undefined) return null;
  const match = /^(\d+)(?:\.(\d{0,6}))?$/.exec(String(text).trim());
  if (!match) throw new Error(`${text} is not an amount of dollars`);
  return Number(match[1]) * 1e6 + Number((match[2] || "").padEnd(6, "0"));
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function seconds(s) {
  if (s === null || s === undefined) return "—";
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`;
}

export function when(iso) {
  if (!iso) return "—";
  return iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", " UTC");
}

/** Unix seconds (the OpenAI-shaped APIs' times) as "2026-01-02 03:04:05 UTC". */
export function unix(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** Compact axis labels: 1.2k, 3.4M. */
export function compact(n) {
  return Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 }).format(n);
}
