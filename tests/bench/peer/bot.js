// The benchmark's peer: the conversation scripts/bench-telegram drives
// (/equip search, /wo list, /stats), written the way a team would write it
// with grammY and node-postgres, against Rivet's PostgreSQL schema and data.
//
//   DATABASE_URL=postgres://... TELEGRAM_BOT_TOKEN=... \
//   TELEGRAM_API_URL=http://127.0.0.1:PORT node bot.js
//
// Updates are fetched with @grammyjs/runner (long polling, updates handled
// concurrently, one chat at a time: what grammY's docs recommend for a bot
// under load; bot.start() handles one update at a time). Users are the
// factory members whose users.telegram_user_id is the sender's Telegram id,
// as in Rivet; everyone else is told they are not registered.
"use strict";

const { Bot, GrammyError, HttpError } = require("grammy");
const { run, sequentialize } = require("@grammyjs/runner");
const { Pool } = require("pg");

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === "") {
    console.error(`peer: ${name} is not set`);
    process.exit(2);
  }
  return v;
};

const PAGE = 10;
// The open statuses, written into the SQL as a constant list (so that the
// planner matches partial indexes on them).
const OPEN = "('open', 'in_progress', 'on_hold')";

const pool = new Pool({
  connectionString: env("DATABASE_URL"),
  max: Number(env("PG_POOL_MAX", "10")), // node-postgres' default
  // The same trigram threshold and statement timeout Rivet sets on its
  // sessions (db/db.c).
  options: "-c pg_trgm.word_similarity_threshold=0.45 -c statement_timeout=5000",
});
pool.on("error", (err) => console.error("peer: idle client error", err.message));

// Whether the schema keeps counters of work orders and machines (tables
// filled by triggers, sql/0009_hot_paths.sql): read them when it does, as
// any code against this schema would; count the rows otherwise.
let counters = false;

const bot = new Bot(env("TELEGRAM_BOT_TOKEN"), {
  client: { apiRoot: env("TELEGRAM_API_URL", "https://api.telegram.org") },
});

// ---- small helpers ----

const esc = (s) =>
  String(s).replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]);

const clip = (s, max) => {
  const chars = Array.from(s ?? "");
  return chars.length <= max ? chars.join("") : chars.slice(0, max - 1).join("") + "…";
};

const STATUS_EMOJI = {
  open: "🟢",
  in_progress: "🟡",
  on_hold: "⏸",
  completed: "✅",
  cancelled: "🔴",
};
const PRIORITY_EMOJI = { low: "🔵", medium: "🟡", high: "🟠", critical: "🔴" };

const html = (ctx, text, keyboard) =>
  ctx.reply(text, {
    parse_mode: "HTML",
    ...(keyboard && keyboard.length ? { reply_markup: { inline_keyboard: keyboard } } : {}),
  });

// ---- who is talking ----

// Every update: the sender's factory membership, as Rivet looks it up.
bot.use(sequentialize((ctx) => ctx.chat?.id.toString()));
bot.use(async (ctx, next) => {
  if (!ctx.from) return;
  const { rows } = await pool.query(
    `SELECT u.id, u.factory_id, u.display_name, u.role, u.active, f.name AS factory_name
       FROM users u JOIN factories f ON f.id = u.factory_id
      WHERE u.telegram_user_id = $1`,
    [ctx.from.id],
  );
  if (rows.length === 0 || !rows[0].active) {
    await ctx.reply("You are not registered in a factory. Ask your admin for an invite link.");
    return;
  }
  ctx.user = rows[0];
  await next();
});

// ---- /equip search TEXT ----

async function equipSearch(ctx, text) {
  if (!text) return ctx.reply("Usage: /equip search TEXT");
  if (Array.from(text).length > 200) return ctx.reply("The search text is too long.");
  const { rows } = await pool.query(
    `WITH q AS (SELECT lower($2) AS t,
                       '%' || replace(replace(replace(lower($2), '\\', '\\\\'), '%', '\\%'),
                                      '_', '\\_') || '%' AS pat)
     SELECT e.number, e.name, e.manufacturer, e.model, e.location
       FROM equipment e, q
      WHERE e.factory_id = $1 AND (e.search_text LIKE q.pat OR q.t <% e.search_text)
      ORDER BY (e.search_text LIKE q.pat) DESC, word_similarity(q.t, e.search_text) DESC,
               similarity(q.t, lower(e.manufacturer || ' ' || e.model)) DESC,
               similarity(q.t, e.search_text) DESC, e.id DESC
      LIMIT $3`,
    [ctx.user.factory_id, text, PAGE],
  );
  if (rows.length === 0)
    return ctx.reply(`No equipment matches "${clip(text, 60)}". Try fewer words, or /equip list.`);
  const lines = [
    `🔎 ${rows.length} match${rows.length === 1 ? "" : "es"} for "${esc(clip(text, 60))}"` +
      `${rows.length === PAGE ? " (best first)" : ""}:`,
  ];
  const keyboard = [];
  for (const e of rows) {
    const label =
      `${clip(e.manufacturer, 40)} ${clip(e.model, 40)}` +
      (e.name ? ` — ${clip(e.name, 40)}` : "") +
      (e.location ? ` · ${clip(e.location, 40)}` : "");
    lines.push(`${e.number} · ${esc(label)}`);
    keyboard.push([
      {
        text: clip(`🏭 ${e.number} ${e.manufacturer} ${e.model}`, 40),
        callback_data: `/equip view ${e.number}`,
      },
    ]);
  }
  return html(ctx, lines.join("\n"), keyboard);
}

bot.command("equip", async (ctx) => {
  const m = /^(search|find)\s+([\s\S]*)$/i.exec(ctx.match.trim());
  if (!m) return ctx.reply("This peer answers /equip search TEXT only.");
  return equipSearch(ctx, m[2].trim());
});

// ---- /wo list ----

bot.command("wo", async (ctx) => {
  const args = ctx.match.trim();
  if (args !== "" && args.toLowerCase() !== "list")
    return ctx.reply("This peer answers /wo list only.");
  const fid = ctx.user.factory_id;
  const [page, count] = await Promise.all([
    pool.query(
      `SELECT w.number, w.title, w.status, w.priority, e.number AS equipment_number,
              e.manufacturer || ' ' || e.model || coalesce(' (' || e.name || ')', '') AS equipment,
              ua.display_name AS assignee,
              extract(day FROM now() - w.created_at)::int AS age_days
         FROM work_orders w
         JOIN equipment e ON e.factory_id = w.factory_id AND e.id = w.equipment_id
         LEFT JOIN users ua ON ua.factory_id = w.factory_id AND ua.id = w.assignee_id
        WHERE w.factory_id = $1 AND w.status IN ${OPEN}
        ORDER BY array_position(ARRAY['critical','high','medium','low'], w.priority),
                 w.created_at, w.id
        LIMIT $2`,
      [fid, PAGE],
    ),
    pool.query(
      counters
        ? `SELECT coalesce(sum(n), 0)::int AS n FROM work_order_counts
            WHERE factory_id = $1 AND status IN ${OPEN}`
        : `SELECT count(*)::int AS n FROM work_orders WHERE factory_id = $1 AND status IN ${OPEN}`,
      [fid],
    ),
  ]);
  const total = count.rows[0].n;
  if (total === 0) return ctx.reply("No open work orders. 🎉");
  const pages = Math.ceil(total / PAGE);
  const lines = [`🛠 Open work orders (${total})${pages > 1 ? ` · page 1 of ${pages}` : ""}`];
  const keyboard = [];
  for (const w of page.rows) {
    keyboard.push([
      { text: clip(`🛠 ${w.number} ${w.title}`, 40), callback_data: `/wo view ${w.number}` },
    ]);
    lines.push(
      esc(
        `${PRIORITY_EMOJI[w.priority] ?? "•"} ${w.number} ${STATUS_EMOJI[w.status] ?? "•"} ` +
          `${clip(w.title, 50)} · ${w.equipment_number} ${clip(w.equipment, 40)} · ` +
          `${w.age_days}d${w.assignee ? ` → ${clip(w.assignee, 30)}` : ""}`,
      ),
    );
  }
  if (pages > 1) {
    lines.push("Next: /wo list 2");
    keyboard.push([{ text: "Next ▶", callback_data: "/wo list 2" }]);
  }
  return html(ctx, lines.join("\n"), keyboard);
});

// ---- /stats ----

const EQUIPMENT_LABEL = "e.manufacturer || ' ' || e.model || coalesce(' (' || e.name || ')', '')";
const byStatus = (sum) => `
  ${sum("status = 'open'")} AS open, ${sum("status = 'in_progress'")} AS in_progress,
  ${sum("status = 'on_hold'")} AS on_hold, ${sum("status = 'completed'")} AS completed,
  ${sum("status = 'cancelled'")} AS cancelled,
  ${sum(`status IN ${OPEN} AND priority = 'low'`)} AS low,
  ${sum(`status IN ${OPEN} AND priority = 'medium'`)} AS medium,
  ${sum(`status IN ${OPEN} AND priority = 'high'`)} AS high,
  ${sum(`status IN ${OPEN} AND priority = 'critical'`)} AS critical`;
const STATS_ROWS = `
  SELECT (SELECT count(*) FROM equipment WHERE factory_id = $1)::int AS equipment,
         ${byStatus((cond) => `count(*) FILTER (WHERE ${cond})::int`)}
    FROM work_orders WHERE factory_id = $1`;
const STATS_COUNTERS = `
  SELECT (SELECT coalesce(sum(n), 0) FROM equipment_counts WHERE factory_id = $1)::int
           AS equipment,
         ${byStatus((cond) => `coalesce(sum(n) FILTER (WHERE ${cond}), 0)::int`)}
    FROM work_order_counts WHERE factory_id = $1`;
const TOP_ROWS = `
  SELECT e.number, ${EQUIPMENT_LABEL} AS label, count(*)::int AS n
    FROM work_orders w JOIN equipment e ON e.factory_id = w.factory_id AND e.id = w.equipment_id
   WHERE w.factory_id = $1 AND w.status IN ${OPEN}
   GROUP BY e.id ORDER BY count(*) DESC, e.id LIMIT 1`;
const TOP_COUNTERS = `
  SELECT e.number, ${EQUIPMENT_LABEL} AS label, c.n::int AS n
    FROM equipment_open_counts c
    JOIN equipment e ON e.factory_id = c.factory_id AND e.id = c.equipment_id
   WHERE c.factory_id = $1 AND c.n > 0 ORDER BY c.n DESC, c.equipment_id LIMIT 1`;

bot.command("stats", async (ctx) => {
  const fid = ctx.user.factory_id;
  const [counts, older, top, alarms] = await Promise.all([
    pool.query(counters ? STATS_COUNTERS : STATS_ROWS, [fid]),
    pool.query(
      `SELECT count(*)::int AS n FROM work_orders
        WHERE factory_id = $1 AND status IN ${OPEN} AND created_at < now() - interval '7 days'`,
      [fid],
    ),
    pool.query(counters ? TOP_COUNTERS : TOP_ROWS, [fid]),
    pool.query(
      `SELECT severity, count(*)::int AS n FROM alarms
        WHERE factory_id = $1 AND resolved_at IS NULL GROUP BY severity`,
      [fid],
    ),
  ]);
  const s = counts.rows[0];
  const a = { low: 0, medium: 0, high: 0, critical: 0 };
  for (const r of alarms.rows) a[r.severity] = r.n;
  const lines = [
    `📊 ${esc(ctx.user.factory_name)}`,
    `Equipment: ${s.equipment}`,
    `Work orders: 🟢 open ${s.open} · 🟡 in progress ${s.in_progress} · ⏸ on hold ${s.on_hold}` +
      ` · ✅ completed ${s.completed} · 🔴 cancelled ${s.cancelled}`,
    `Open by priority: 🔴 critical ${s.critical} · 🟠 high ${s.high} · 🟡 medium ${s.medium}` +
      ` · 🔵 low ${s.low}`,
    `Open for more than 7 days: ${older.rows[0].n}`,
  ];
  if (top.rows.length)
    lines.push(
      `Most open work orders: ${top.rows[0].number} ${esc(clip(top.rows[0].label, 60))}` +
        ` (${top.rows[0].n})`,
    );
  lines.push(
    a.low + a.medium + a.high + a.critical === 0
      ? "🚨 No open alarms"
      : `🚨 Alarms open: 🔴 ${a.critical} critical · 🟠 ${a.high} high · 🟡 ${a.medium} medium` +
          ` · 🔵 ${a.low} low`,
  );
  return html(ctx, lines.join("\n"));
});

// ---- errors, start and stop ----

bot.catch(async (err) => {
  const e = err.error;
  if (e instanceof GrammyError) console.error("peer: Bot API error:", e.description);
  else if (e instanceof HttpError) console.error("peer: cannot reach the Bot API:", e.message);
  else console.error("peer: handler failed:", e);
  try {
    await err.ctx.reply("Sorry, something went wrong. Please try again in a minute.");
  } catch (_) {
    // the Bot API is unreachable too: nothing more to do
  }
});

async function main() {
  const { rows } = await pool.query(
    `SELECT to_regclass('work_order_counts') IS NOT NULL
        AND to_regclass('equipment_open_counts') IS NOT NULL
        AND to_regclass('equipment_counts') IS NOT NULL AS yes`,
  );
  counters = rows[0].yes;
  await bot.init();
  const runner = run(bot);
  console.error(
    `peer: ready as @${bot.botInfo.username} (pid ${process.pid}; ` +
      `${counters ? "reads the work order counters" : "counts rows"})`,
  );
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    if (runner.isRunning()) await runner.stop();
    await pool.end();
    console.error("peer: stopped");
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  await runner.task();
  await stop();
}

main().catch((e) => {
  console.error("peer: fatal:", e);
  process.exit(1);
});
