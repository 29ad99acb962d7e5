//! The page's one inline style sheet (no external assets, so the page works offline and through
//! an SSH tunnel).

/// Colours, tiles, tables and pills; `ok` / `warn` / `bad` mark state.
pub(super) const CSS: &str = r#"
:root{--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--mute:#57606a;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;background:#fff}
header{padding:14px 24px;border-bottom:1px solid var(--line);background:var(--bg)}
header h1{font-size:18px;margin:0 0 2px}
header .meta{color:var(--mute);font-size:12.5px}
main{padding:8px 24px 24px}
h2{font-size:15px;margin:22px 0 8px}
h2 .count{color:var(--mute);font-weight:normal}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px;margin-top:14px}
.tile{border:1px solid var(--line);border-left:5px solid var(--mute);border-radius:6px;padding:8px 12px}
.tile .k{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.tile .v{font-size:20px;font-weight:600}
.tile .d{font-size:12px;color:var(--mute)}
.ok{border-left-color:var(--ok)} .ok .v{color:var(--ok)}
.warn{border-left-color:var(--warn)} .warn .v{color:var(--warn)}
.bad{border-left-color:var(--bad)} .bad .v{color:var(--bad)}
.tile ul{margin:2px 0 0 16px;padding:0;font-size:12px;color:var(--bad)}
.totals{color:var(--mute);font-size:12.5px;margin-top:10px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--bg);font-weight:600;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.t{white-space:nowrap;color:var(--mute)}
.id{font:11.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:var(--mute);white-space:nowrap}
.err{color:var(--bad);word-break:break-word}
.pill{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;border:1px solid currentColor;white-space:nowrap}
.p-ok{color:var(--ok)} .p-warn{color:var(--warn)} .p-bad{color:var(--bad)} .p-mute{color:var(--mute)}
.empty{color:var(--mute);font-style:italic}
.bar{height:10px;background:var(--bg);border:1px solid var(--line);border-radius:5px;overflow:hidden;max-width:520px}
.bar>div{height:100%;background:var(--ok)}
footer{padding:10px 24px;color:var(--mute);font-size:12px;border-top:1px solid var(--line)}
footer a{color:inherit}
"#;
