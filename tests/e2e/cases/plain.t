# Plain words in the console chat, as the admin of the default factory
# "demo": a fault report becomes a proposal that a button (typed here as the
# command it sends) confirms; an ambiguous machine is asked about; state
# questions and the lists; a question without and with an LLM (the fake in
# tests/fake_llm).

=== (two pumps called Pump 3, and a compressor)
run: rivet chat
stdin: /equip add KSB Etanorm name=Pump 3 location=Line 2
stdin: /equip add KSB "Etanorm 50" name=Pump 3 location=Line 3
stdin: /equip add "Atlas Copco" GA30 name=Main compressor location=Hall B

=== a fault report is a proposal; Create opens it, once
run: rivet chat --echo --buttons
---
> pump 3 on line 2 is leaking again
📝 New work order?
Equipment: EQ-YYYY-000001 Pump 3 (KSB Etanorm) · Line 2
Title: Pump 3: leaking (line 2)
Priority: 🟠 high

Nothing is created until you tap ✅ Create.
[ ✅ Create | /wo draft 1 create ] [ ✏️ Edit | /wo draft 1 edit ] [ ❌ Cancel | /wo draft 1 cancel ]

> /wo list
No open work orders. 🎉

> /wo draft 1 create
✅ Opened 🟠 WO-YYYY-000001 high · Pump 3: leaking (line 2)
Equipment: EQ-YYYY-000001 KSB Etanorm (Pump 3)
Move it along: /wo status WO-YYYY-000001 in_progress
[ ▶ Start | /wo status WO-YYYY-000001 in_progress ] [ ⏸ Hold | /wo status WO-YYYY-000001 on_hold ] [ ✅ Complete | /wo status WO-YYYY-000001 completed ]
[ 👷 Take it | /wo assign WO-YYYY-000001 me ]
[ 🛠 View WO-YYYY-000001 | /wo view WO-YYYY-000001 ]

> /wo draft 1 create
Already created: WO-YYYY-000001. See /wo view WO-YYYY-000001.

=== the description is the message as typed
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT title || ' | ' || description FROM work_orders"
---
Pump 3: leaking (line 2) | pump 3 on line 2 is leaking again

=== an ambiguous machine is asked about, never guessed
run: rivet chat --echo --buttons
---
> pump 3 is leaking
Which machine do you mean by "pump 3"?
• EQ-YYYY-000001 Pump 3 (KSB Etanorm) · Line 2
• EQ-YYYY-000002 Pump 3 (KSB Etanorm 50) · Line 3
[ Pump 3 · Line 2 | ~/wo draft 2 eq EQ-YYYY-000001 ]
[ Pump 3 · Line 3 | ~/wo draft 2 eq EQ-YYYY-000002 ]
[ None of these | ~/wo draft 2 none ]

> /wo draft 2 eq EQ-YYYY-000002
📝 New work order?
Equipment: EQ-YYYY-000002 Pump 3 (KSB Etanorm 50) · Line 3
Title: Pump 3: leaking
Priority: 🟠 high

Nothing is created until you tap ✅ Create.
[ ✅ Create | /wo draft 2 create ] [ ✏️ Edit | /wo draft 2 edit ] [ ❌ Cancel | /wo draft 2 cancel ]

> /wo draft 2 cancel
❌ Cancelled: nothing was created.

> /wo draft 2 create
That proposal was cancelled. Describe the fault again for a new one.

=== state questions and the lists
run: rivet chat --echo
---
> is pump 3 on line 2 running?
🏭 EQ-YYYY-000001
KSB Etanorm
Name: Pump 3
Location: Line 2
Criticality: 🟡 medium
Added YYYY-MM-DD HH:MM by Admin

Open work orders: 1
🟠 WO-YYYY-000001 🟢 Pump 3: leaking (line 2)

> my work orders
No open work orders are assigned to you.

> any alarms?
No open alarms. 🎉

> any alarms on the main compressor?
No open alarms on EQ-YYYY-000003 Main compressor. 🎉

=== a question without an LLM gets what Rivet can do
run: rivet chat --echo
---
> how do I reset fault F0021 on the main compressor?
I can only do maintenance actions here: no assistant is set up for questions.

Try it in plain words:
• "pump 3 on line 2 is leaking" to report a fault
• "what's open on pump 3" · "status of WO-2026-000012"
• "my work orders" · "what's open" · "any alarms"
Or the commands: /equip · /wo · /stats · /alerts · /help

=== with an LLM, an answer marked as AI-generated, with the machine's context sent
run: python3 "$FIXTURES/../fake_llm/fake_llm.py" --port 0 --port-file "$WORK/llm.port" >/dev/null 2>&1 & pid=$!; for i in $(seq 200); do [ -s "$WORK/llm.port" ] && break; sleep 0.05; done; P=$(cat "$WORK/llm.port"); python3 -c 'import json, sys, urllib.request; urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%s/control/answers" % sys.argv[1], data=json.dumps({"answers": [{"content": "1. Lock out and tag out the compressor.\n2. Read the fault history on the panel."}]}).encode(), headers={"Content-Type": "application/json"}))' "$P"; LLM_URL=http://127.0.0.1:$P/v1 LLM_MODEL=fake-chat RIVET_LOG_LEVEL=warn rivet chat --echo; python3 -c 'import json, sys, urllib.request; r = json.load(urllib.request.urlopen("http://127.0.0.1:%s/control/requests" % sys.argv[1])); print(r["requests"][0]["text"][0].splitlines()[0])' "$P"; kill $pid
---
> how do I reset fault F0021 on the main compressor?
🤖 AI-generated answer: check it against the manual and your site's safety rules.

1. Lock out and tag out the compressor.
2. Read the fault history on the panel.

Machine: EQ-YYYY-000003 Atlas Copco GA30, called Main compressor, at Hall B (criticality medium)

=== the call is recorded for the limits and the budget
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT count(*) || ' ' || bool_and(ok) FROM llm_calls"
---
1 true
