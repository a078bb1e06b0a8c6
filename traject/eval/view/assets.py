"""The report's stylesheet and the task list's filter script (no external resources: the
report opens from disk, offline)."""

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, Segoe UI, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 12px 24px; }
header a { color: #9cc3ff; }
main { padding: 16px 24px; max-width: 1200px; }
h1 { font-size: 20px; margin: 0; } h2 { font-size: 16px; margin: 20px 0 8px; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #dde1e7; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f5; }
.filters { display: flex; gap: 12px; align-items: center; margin: 12px 0; flex-wrap: wrap; }
.ok { color: #17803d; font-weight: 600; } .fail { color: #b42318; font-weight: 600; } .muted { color: #667085; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; background: #eef1f5; font-size: 12px; }
.badge.error { background: #fde2e1; color: #b42318; } .badge.infra_error { background: #fff1c2; color: #8a5a00; }
.msg { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 8px 12px; margin: 6px 0; }
.msg .role { font-size: 12px; text-transform: uppercase; color: #667085; letter-spacing: .04em; }
.msg.assistant { border-left: 4px solid #3b82f6; } .msg.tool { border-left: 4px solid #a3a3a3; }
.msg.user { border-left: 4px solid #16a34a; } .msg.system { border-left: 4px solid #9333ea; }
.msg.tool.is-error { border-left-color: #dc2626; }
pre { white-space: pre-wrap; word-break: break-word; margin: 4px 0; font: 12.5px/1.4 ui-monospace, monospace; }
.turn { border: 1px solid #c9d1dc; border-radius: 8px; padding: 8px 12px; margin: 14px 0; background: #fbfcfd; }
.turn > h3 { font-size: 14px; margin: 0 0 6px; }
.call { background: #f1f5fb; border-radius: 4px; padding: 4px 8px; margin: 4px 0; }
.shot { position: relative; display: inline-block; max-width: 100%; margin: 6px 0; outline: 1px solid #c9d1dc; }
.shot img { display: block; max-width: 100%; height: auto; }
.shot svg.overlay { position: absolute; left: 0; top: 0; width: 100%; height: 100%; pointer-events: none; }
.reward-line { font-size: 13px; margin: 4px 0; }
details > summary { cursor: pointer; color: #475467; }
svg.spark { background: #fff; border: 1px solid #dde1e7; }
"""

FILTER_JS = """
function applyFilters() {
  const q = document.getElementById('q').value.trim().toLowerCase();
  const status = document.getElementById('status').value;
  const outcome = document.getElementById('outcome').value;
  let shown = 0;
  for (const row of document.querySelectorAll('#trajectories tbody tr')) {
    const ok = (!q || row.dataset.text.includes(q))
      && (!status || row.dataset.status === status)
      && (!outcome || row.dataset.outcome === outcome);
    row.style.display = ok ? '' : 'none';
    if (ok) shown += 1;
  }
  document.getElementById('shown').textContent = shown;
}
for (const id of ['q', 'status', 'outcome']) {
  document.getElementById(id).addEventListener('input', applyFilters);
}
applyFilters();
"""
