# /stats on an empty plant and after some activity.

=== an empty plant
run: rivet chat --echo
---
> /stats
📊 demo
Equipment: 0
Work orders: 🟢 open 0 · 🟡 in progress 0 · ⏸ on hold 0 · ✅ completed 0 · 🔴 cancelled 0
Open by priority: 🔴 critical 0 · 🟠 high 0 · 🟡 medium 0 · 🔵 low 0
Open for more than 7 days: 0
🚨 No open alarms

> /stats please
Usage: /stats

=== (three machines, six work orders in every status)
stdin: /equip add Siemens G120C name=Main drive
stdin: /equip add Grundfos CR10
stdin: /equip add Atlas GA30
stdin: /wo new EQ-YYYY-000001 Fault F0001 priority=critical
stdin: /wo new EQ-YYYY-000001 Coolant leak priority=high
stdin: /wo new EQ-YYYY-000001 Fan noisy priority=low
stdin: /wo new EQ-YYYY-000002 Belt squeal
stdin: /wo new EQ-YYYY-000002 Check grease
stdin: /wo new EQ-YYYY-000003 Filter change
stdin: /wo status WO-YYYY-000002 in_progress
stdin: /wo status WO-YYYY-000003 on_hold
stdin: /wo status WO-YYYY-000004 completed
stdin: /wo status WO-YYYY-000005 cancelled
run: rivet chat >/dev/null

=== (one open work order was opened ten days ago)
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "UPDATE work_orders SET created_at = now() - interval '10 days' WHERE number LIKE 'WO-%-000006' RETURNING title"
---
Filter change

=== after activity: counts by status and priority, old work orders, busiest machine
run: rivet chat --echo
---
> /stats
📊 demo
Equipment: 3
Work orders: 🟢 open 2 · 🟡 in progress 1 · ⏸ on hold 1 · ✅ completed 1 · 🔴 cancelled 1
Open by priority: 🔴 critical 1 · 🟠 high 1 · 🟡 medium 1 · 🔵 low 1
Open for more than 7 days: 1
Most open work orders: EQ-YYYY-000001 Siemens G120C (Main drive) (3)
🚨 No open alarms

> /wo list
🛠 Open work orders (4)
🔴 WO-YYYY-000001 🟢 Fault F0001 · EQ-YYYY-000001 Siemens G120C (Main drive) · 0d
🟠 WO-YYYY-000002 🟡 Coolant leak · EQ-YYYY-000001 Siemens G120C (Main drive) · 0d
🟡 WO-YYYY-000006 🟢 Filter change · EQ-YYYY-000003 Atlas GA30 · 10d
🔵 WO-YYYY-000003 ⏸ Fan noisy · EQ-YYYY-000001 Siemens G120C (Main drive) · 0d
