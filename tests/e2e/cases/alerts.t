# Plant alarms in the chat: /alerts, /ack, /resolve, /wo alarm, /subscribe,
# /unsubscribe, /mute, /rules and the /stats line. The console cannot
# receive pushed alarms, so the devices and alarms are put in with SQL, as
# the alert thread would have recorded them (observed on 2026-02-19 in the
# factory's UTC). Acknowledging and muting happen now, so every HH:MM is
# masked (TIMES); the edits of other chats' copies are covered by
# tests/integration/test_alerts_chat.c, since no copy went out here.
set: TIMES='s/\b[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}\b/YYYY-MM-DD HH:MM/g; s/\b[0-9]{2}:[0-9]{2}\b/HH:MM/g'

=== (demo with a machine, and Tom, a technician)
run: rivet chat <<< '/equip add Haas VF-2 name=Press 3' >/dev/null && rivet invite create --factory demo --role technician --quiet >code && echo "/start $(cat code)" | rivet chat --user tom >/dev/null

=== (another factory, north, with its admin)
run: rivet chat --factory north <<< '/stats' >/dev/null

=== (two rules, one switched off)
run: printf '%s' '{"name": "Spindle overheating", "severity": "critical", "condition": {"operator": "AND", "conditions": [{"parameter": "spindle_temp", "operator": "gt", "threshold": 80}, {"parameter": "coolant_flow", "operator": "lt", "threshold": 5}]}}' | rivet rule add --factory demo - >/dev/null && printf '%s' '{"name": "Pump dry run", "severity": "high", "condition": {"parameter": "pump_current", "operator": "lt", "threshold": 2}}' | rivet rule add --factory demo - >/dev/null && psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "UPDATE alert_rules SET active = false WHERE name = 'Pump dry run'"

=== (devices press-3 and pump-1, north's press-3; alarms 1 to 3 in demo, 4 in north)
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -f - <<< "INSERT INTO devices (factory_id, key) SELECT f.id, k FROM factories f, unnest(ARRAY['press-3', 'pump-1']) k WHERE f.slug = 'demo'; INSERT INTO devices (factory_id, key) SELECT id, 'press-3' FROM factories WHERE slug = 'north'; INSERT INTO alarms (factory_id, device_id, rule_id, source, severity, message, observed_at) SELECT f.id, d.id, r.id, 'rule', 'critical', 'spindle_temp 82.5 > 80 AND coolant_flow 3.2 < 5', '2026-02-19 10:30+00' FROM factories f JOIN devices d ON d.factory_id = f.id AND d.key = 'press-3' JOIN alert_rules r ON r.factory_id = f.id AND r.name = 'Spindle overheating' WHERE f.slug = 'demo'; INSERT INTO alarms (factory_id, device_id, source, code, severity, message, observed_at) SELECT f.id, d.id, 'device', 'F0021', 'high', 'Spindle drive fault', '2026-02-19 10:35+00' FROM factories f JOIN devices d ON d.factory_id = f.id AND d.key = 'press-3' WHERE f.slug = 'demo'; INSERT INTO alarms (factory_id, device_id, source, severity, message, observed_at) SELECT f.id, d.id, 'offline', 'medium', 'No data for 10 min', '2026-02-19 10:40+00' FROM factories f JOIN devices d ON d.factory_id = f.id AND d.key = 'pump-1' WHERE f.slug = 'demo'; INSERT INTO alarms (factory_id, device_id, source, code, severity, message, observed_at) SELECT f.id, d.id, 'device', 'E1', 'low', 'North fault', '2026-02-19 10:45+00' FROM factories f JOIN devices d ON d.factory_id = f.id WHERE f.slug = 'north'; SELECT string_agg(id::text, ' ' ORDER BY id) FROM alarms"
---
1 2 3 4

=== /alerts lists the open alarms, newest first, with a ✅ button for each
run: rivet chat --echo --buttons | sed -E "$TIMES"
---
> /alerts
🚨 Open alarms (3)
🟡 #3 pump-1 · No data for 10 min · YYYY-MM-DD HH:MM
🟠 #2 press-3 · Code F0021 · Spindle drive fault · YYYY-MM-DD HH:MM
🔴 #1 press-3 · spindle_temp 82.5 > 80 AND coolant_flow 3.2 < 5 · YYYY-MM-DD HH:MM
One alarm: /alerts #ID
[ ✅ #3 | /ack 3 ] [ ✅ #2 | /ack 2 ] [ ✅ #1 | /ack 1 ]

> /alerts #1
🔴 CRITICAL · alarm #1
Device press-3 · not linked to a machine
spindle_temp 82.5 > 80 AND coolant_flow 3.2 < 5
Rule: Spindle overheating · YYYY-MM-DD HH:MM
[ ✅ Acknowledge | /ack 1 ]
[ 🛠 Work order | /wo alarm 1 ] [ 🔕 Mute 1h | /mute #1 1h ]

> /alerts view 3
🟡 MEDIUM · alarm #3
Device pump-1 · not linked to a machine
No data for 10 min
YYYY-MM-DD HH:MM
[ ✅ Acknowledge | /ack 3 ]
[ 🛠 Work order | /wo alarm 3 ] [ 🔕 Mute 1h | /mute #3 1h ]

> /alerts 2
There is no page 2; the list has 1 page.

> /alerts everything
Usage: /alerts [PAGE]

=== /ack: Tom acknowledges...
run: rivet chat --user tom --echo
---
> /ack 1
✅ Alarm #1 acknowledged.

=== ...and the admin, second, is told who was first
run: rivet chat --echo --buttons | sed -E "$TIMES"
---
> /ack #1
Alarm #1 was already acknowledged by tom at HH:MM.

> /alerts #1
🔴 CRITICAL · alarm #1
Device press-3 · not linked to a machine
spindle_temp 82.5 > 80 AND coolant_flow 3.2 < 5
Rule: Spindle overheating · YYYY-MM-DD HH:MM
✅ Acknowledged by tom HH:MM
[ ☑️ Resolve | /resolve 1 ]
[ 🛠 Work order | /wo alarm 1 ]

=== /resolve closes an alarm; a resolved alarm says by whom
run: rivet chat --echo --buttons | sed -E "$TIMES"
---
> /resolve 2
☑️ Alarm #2 resolved.

> /resolve 2
Alarm #2 is already resolved (by Admin at HH:MM).

> /ack 2
Alarm #2 is already resolved (by Admin at HH:MM).

> /alerts #2
🟠 HIGH · alarm #2
Device press-3 · not linked to a machine
Code F0021 · Spindle drive fault
From the device · YYYY-MM-DD HH:MM
✅ Acknowledged by Admin HH:MM
☑️ Resolved by Admin HH:MM

> /alerts
🚨 Open alarms (2)
🟡 #3 pump-1 · No data for 10 min · YYYY-MM-DD HH:MM
🔴 #1 press-3 · spindle_temp 82.5 > 80 AND coolant_flow 3.2 < 5 · YYYY-MM-DD HH:MM · ✅ tom
One alarm: /alerts #ID
[ ✅ #3 | /ack 3 ]

=== /wo alarm: an unlinked device is explained; linked, the work order is opened once
run: rivet chat --echo --buttons | sed -E "$TIMES"
---
> /wo alarm 1
Device press-3 is not linked to a machine. Link it with /equip edit EQ-NUMBER device=press-3, then press Work order again.

> /equip edit EQ-YYYY-000001 device=press-9
No device press-9 in your factory. Nothing was changed.

> /equip edit EQ-YYYY-000001 device=press-3
📡 Device press-3 now reports for EQ-YYYY-000001.

🏭 EQ-YYYY-000001
Haas VF-2
Name: Press 3
Criticality: 🟡 medium
Added YYYY-MM-DD HH:MM by Admin

No open work orders.
[ 🛠 New work order | /wo new EQ-YYYY-000001 ]

> /wo alarm 1
✅ Opened 🔴 WO-YYYY-000001 critical · Alarm #1: spindle_temp 82.5 > 80 AND coolant_flow 3.2 < 5
Equipment: EQ-YYYY-000001 Haas VF-2 (Press 3)
Move it along: /wo status WO-YYYY-000001 in_progress
[ ▶ Start | /wo status WO-YYYY-000001 in_progress ] [ ⏸ Hold | /wo status WO-YYYY-000001 on_hold ] [ ✅ Complete | /wo status WO-YYYY-000001 completed ]
[ 👷 Take it | /wo assign WO-YYYY-000001 me ]
[ 🛠 View WO-YYYY-000001 | /wo view WO-YYYY-000001 ]

> /wo alarm 1
Alarm #1 already has work order WO-YYYY-000001.
[ 🛠 WO-YYYY-000001 | /wo view WO-YYYY-000001 ]

> /alerts #1
🔴 CRITICAL · alarm #1
Press 3 · EQ-YYYY-000001 (device press-3)
spindle_temp 82.5 > 80 AND coolant_flow 3.2 < 5
Rule: Spindle overheating · YYYY-MM-DD HH:MM
✅ Acknowledged by tom HH:MM
🛠 WO-YYYY-000001
[ ☑️ Resolve | /resolve 1 ]
[ 🛠 WO-YYYY-000001 | /wo view WO-YYYY-000001 ]

> /alerts
🚨 Open alarms (2)
🟡 #3 pump-1 · No data for 10 min · YYYY-MM-DD HH:MM
🔴 #1 Press 3 EQ-YYYY-000001 · spindle_temp 82.5 > 80 AND coolant_flow 3.2 < 5 · YYYY-MM-DD HH:MM · ✅ tom
One alarm: /alerts #ID
[ ✅ #3 | /ack 3 ]

=== ...the work order is the alarm's, on the device's machine, as urgent as the alarm
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT w.priority || ' ' || e.name || ' ' || (a.work_order_id = w.id) FROM alarms a JOIN work_orders w ON w.id = a.work_order_id JOIN equipment e ON e.id = w.equipment_id WHERE a.id = 1"
---
critical Press 3 true

=== /subscribe and /unsubscribe choose the alarms Tom gets
run: rivet chat --user tom --echo
---
> /subscribe
🔔 The alarms you get:
Every device: high and critical alarms (the default)

Change it: /subscribe [low|medium|high|critical] [DEVICE…]
  e.g. /subscribe medium (medium and up from every device)
  /subscribe press-3 (everything from press-3)
Stop: /unsubscribe [DEVICE…|all] · Pause: /mute DEVICE 1h

> /subscribe critical
🔔 You will get critical alarms from every device.

> /subscribe press-3
🔔 You will get all alarms from press-3.

> /subscribe medium press-3 pump-1
🔔 You will get medium, high and critical alarms from press-3 and pump-1.

> /subscribe high press-3 press-9
No device press-9. Nothing was changed.

> /subscribe
🔔 The alarms you get:
Every device: critical alarms
press-3: medium, high and critical alarms
pump-1: medium, high and critical alarms

Change it: /subscribe [low|medium|high|critical] [DEVICE…]
  e.g. /subscribe medium (medium and up from every device)
  /subscribe press-3 (everything from press-3)
Stop: /unsubscribe [DEVICE…|all] · Pause: /mute DEVICE 1h

> /unsubscribe pump-1
🔕 You will get no alarms from pump-1. Back on: /subscribe high pump-1.

> /unsubscribe all
🔕 You will get no alarms. Turn them back on with /subscribe high.

> /subscribe
🔔 The alarms you get:
Every device: no alarms

Change it: /subscribe [low|medium|high|critical] [DEVICE…]
  e.g. /subscribe medium (medium and up from every device)
  /subscribe press-3 (everything from press-3)
Stop: /unsubscribe [DEVICE…|all] · Pause: /mute DEVICE 1h

=== /mute silences a device, an alarm's device or all, for 1m to 30d
run: rivet chat --user tom --echo | sed -E "$TIMES"
---
> /mute press-3 1h
🔕 press-3 muted until HH:MM. Unmute: /mute press-3 off

> /mute #3 2d
🔕 pump-1 muted until YYYY-MM-DD HH:MM. Unmute: /mute pump-1 off

> /mute all 30m
🔕 All devices muted until HH:MM. Unmute: /mute all off

> /mute press-3 off
🔔 press-3 unmuted, but all devices stay muted until YYYY-MM-DD HH:MM (/mute all off).

> /subscribe
🔔 The alarms you get:
Every device: no alarms
🔕 All devices muted until YYYY-MM-DD HH:MM
🔕 pump-1 muted until YYYY-MM-DD HH:MM

Change it: /subscribe [low|medium|high|critical] [DEVICE…]
  e.g. /subscribe medium (medium and up from every device)
  /subscribe press-3 (everything from press-3)
Stop: /unsubscribe [DEVICE…|all] · Pause: /mute DEVICE 1h

> /mute press-3 45
"45" is not a duration: a mute lasts 1m to 30d, e.g. 30m, 8h or 2d.

> /mute press-3 31d
"31d" is not a duration: a mute lasts 1m to 30d, e.g. 30m, 8h or 2d.

> /mute press-9 1h
No device press-9. Nothing was changed.

> /mute #4 1h
No alarm #4.

> /mute press-3
Usage: /mute DEVICE|all|#ALARM DURATION|off

=== ...and the mutes are Tom's, ending when he said
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT coalesce(d.key, 'all') || ' ' || round(extract(epoch FROM m.until - now()) / 60) FROM alarm_mutes m JOIN users u ON u.id = m.user_id LEFT JOIN devices d ON d.id = m.device_id WHERE u.console_name = 'tom' AND m.until > now() ORDER BY 1"
---
all 30
pump-1 2880

=== /rules: technicians are refused...
run: rivet chat --user tom --echo
---
> /rules
Only supervisors and admins can see the alert rules.

=== ...the admin sees every rule, active or not
run: rivet chat --echo
---
> /rules
📏 Alert rules (2, 1 active)

○ 🟠 high · Pump dry run
  pump_current < 2

● 🔴 critical · Spindle overheating
  spindle_temp > 80 AND coolant_flow < 5

● active · ○ inactive

> /rules all
Usage: /rules

=== /stats counts the open alarms by severity
run: rivet chat --echo && rivet chat --factory north <<< '/stats' | grep '^🚨'
---
> /stats
📊 demo
Equipment: 1
Work orders: 🟢 open 1 · 🟡 in progress 0 · ⏸ on hold 0 · ✅ completed 0 · 🔴 cancelled 0
Open by priority: 🔴 critical 1 · 🟠 high 0 · 🟡 medium 0 · 🔵 low 0
Open for more than 7 days: 0
Most open work orders: EQ-YYYY-000001 Haas VF-2 (Press 3) (1)
🚨 Alarms open: 🔴 1 critical · 🟠 0 high · 🟡 1 medium · 🔵 0 low

🚨 Alarms open: 🔴 0 critical · 🟠 0 high · 🟡 0 medium · 🔵 1 low

=== (the alarms as they stand)
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT md5(string_agg(a::text, ',' ORDER BY id)) FROM alarms a"
capture: BEFORE

=== unknown alarms, another factory's, and words that are no alarm number are refused
run: rivet chat --echo
---
> /ack 4
No alarm #4.

> /resolve 4
No alarm #4.

> /alerts #4
No alarm #4.

> /wo alarm 4
No alarm #4.

> /ack 999999
No alarm #999999.

> /ack 1; DROP TABLE alarms
"1;" is not an alarm number: for alarm #12, send /ack 12. Nothing was changed.

> /resolve 3 OR 1=1
Usage: /resolve ID

> /ack -1
"-1" is not an alarm number: for alarm #12, send /ack 12. Nothing was changed.

> /ack
Usage: /ack ID

=== ...in north too, which sees only its own
run: rivet chat --factory north --echo
---
> /ack 3
No alarm #3.

> /resolve 1
No alarm #1.

> /alerts
🚨 Open alarms (1)
🔵 #4 press-3 · Code E1 · North fault · YYYY-MM-DD HH:MM
One alarm: /alerts #ID

=== ...and changed nothing
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT md5(string_agg(a::text, ',' ORDER BY id)) FROM alarms a" -c "SELECT count(*) FROM work_orders"
---
${BEFORE}
1
