// Uses over time as a bar chart per day, drawn on a canvas, with a text summary for screen readers.
import { h } from "./ui.js";

export function usageChart(usage) {
  const perDay = new Map();
  for (const u of usage) {
    const day = u.created_at.slice(0, 10);
    perDay.set(day, (perDay.get(day) || 0) + 1);
  }
  const days = [...perDay.keys()].sort();
  const canvas = h("canvas", { width: "900", height: "160", role: "img", "aria-label": `Uses per day: ${days.map((d) => `${d}: ${perDay.get(d)}`).join("; ")}` });
  requestAnimationFrame(() => {
    const g = canvas.getContext("2d");
    const max = Math.max(...perDay.values());
    const width = canvas.width, height = canvas.height, pad = 24;
    const bar = Math.max(4, Math.min(60, (width - pad * 2) / days.length - 6));
    g.clearRect(0, 0, width, height);
    g.font = "12px system-ui, sans-serif";
    g.fillStyle = "#1a1a1a";
    days.forEach((day, i) => {
      const x = pad + i * (bar + 6);
      const barHeight = ((height - pad * 2) * perDay.get(day)) / max;
      g.fillStyle = "#1d4ed8";
      g.fillRect(x, height - pad - barHeight, bar, barHeight);
      g.fillStyle = "#1a1a1a";
      g.fillText(String(perDay.get(day)), x, height - pad - barHeight - 4);
      if (days.length <= 12) g.fillText(day.slice(5), x, height - 6);
    });
  });
  return h("figure", {}, canvas, h("figcaption", { class: "hint", text: `${usage.length} uses over ${days.length} day(s).` }));
}
