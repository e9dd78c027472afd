# /equip search (fuzzy, ranked) and /equip view (by number, by text, not
# found with a suggestion, ambiguous).

=== (five machines and two work orders)
stdin: /equip add Siemens G120C serial=XAJ123 location=Line 2 bay 4 name=Main drive criticality=critical
stdin: /equip add ABB "ACS 580" serial=ABB-77 location=Line 1
stdin: /equip add Grundfos CR10 name=Coolant pump location=Line 2
stdin: /equip add Grundfos CR15 name=Spare pump
stdin: /equip add Atlas GA30 criticality=low
stdin: /wo new EQ-YYYY-000001 Fault F0001 on display priority=high
stdin: /wo new EQ-YYYY-000001 Fan noisy
stdin: /wo new EQ-YYYY-000002 Cancelled job
stdin: /wo status WO-YYYY-000003 cancelled
run: rivet chat | grep -c '^✅ '
---
8

=== a misspelled search finds the machine
run: rivet chat --echo
---
> /equip search simens g120
🔎 1 match for "simens g120":
EQ-YYYY-000001 · Siemens G120C — Main drive · Line 2 bay 4

> /equip search SIEMENS
🔎 1 match for "SIEMENS":
EQ-YYYY-000001 · Siemens G120C — Main drive · Line 2 bay 4

> /equip find xaj123
🔎 1 match for "xaj123":
EQ-YYYY-000001 · Siemens G120C — Main drive · Line 2 bay 4

> /equip search coolant pmp
🔎 1 match for "coolant pmp":
EQ-YYYY-000003 · Grundfos CR10 — Coolant pump · Line 2

=== several matches are listed, best first
run: rivet chat --echo
---
> /equip search grundfos
🔎 2 matches for "grundfos":
EQ-YYYY-000004 · Grundfos CR15 — Spare pump
EQ-YYYY-000003 · Grundfos CR10 — Coolant pump · Line 2

> /equip search line 1
🔎 3 matches for "line 1":
EQ-YYYY-000002 · ABB ACS 580 · Line 1
EQ-YYYY-000003 · Grundfos CR10 — Coolant pump · Line 2
EQ-YYYY-000001 · Siemens G120C — Main drive · Line 2 bay 4

=== no match, an empty search and a search that looks like SQL or a LIKE pattern
run: rivet chat --echo
---
> /equip search hydraulic press
No equipment matches "hydraulic press". Try fewer words, or /equip list.

> /equip search
Usage: /equip search TEXT

> /equip search %
No equipment matches "%". Try fewer words, or /equip list.

> /equip search _
No equipment matches "_". Try fewer words, or /equip list.

> /equip search ' OR 1=1 --
No equipment matches "' OR 1=1 --". Try fewer words, or /equip list.

=== /equip view by number (any case) shows every field and the open work orders
run: rivet chat --echo
---
> /equip view EQ-YYYY-000001
🏭 EQ-YYYY-000001
Siemens G120C
Name: Main drive
Serial: XAJ123
Location: Line 2 bay 4
Criticality: 🔴 critical
Added YYYY-MM-DD HH:MM by Admin

Open work orders: 2
🟠 WO-YYYY-000001 🟢 Fault F0001 on display
🟡 WO-YYYY-000002 🟢 Fan noisy

> /equip view eq-YYYY-000002
🏭 EQ-YYYY-000002
ABB ACS 580
Serial: ABB-77
Location: Line 1
Criticality: 🟡 medium
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

> /equip EQ-YYYY-000005
🏭 EQ-YYYY-000005
Atlas GA30
Criticality: 🔵 low
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

=== /equip view by text shows the one machine that matches
run: rivet chat --echo
---
> /equip view simens
🏭 EQ-YYYY-000001
Siemens G120C
Name: Main drive
Serial: XAJ123
Location: Line 2 bay 4
Criticality: 🔴 critical
Added YYYY-MM-DD HH:MM by Admin

Open work orders: 2
🟠 WO-YYYY-000001 🟢 Fault F0001 on display
🟡 WO-YYYY-000002 🟢 Fan noisy

> /equip show atlas
🏭 EQ-YYYY-000005
Atlas GA30
Criticality: 🔵 low
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

=== /equip view of text that matches several machines asks which one
run: rivet chat --echo
---
> /equip view grundfos
Several machines match "grundfos"; which one?
EQ-YYYY-000004 · Grundfos CR15 — Spare pump
EQ-YYYY-000003 · Grundfos CR10 — Coolant pump · Line 2

=== /equip view of text that only one machine holds as typed shows that one
run: rivet chat --echo | head -n 3
---
> /equip view spare pump
🏭 EQ-YYYY-000004
Grundfos CR15

=== /equip view of an unknown machine says not found, with the closest number
run: rivet chat --echo
---
> /equip view EQ-YYYY-000009
No equipment EQ-YYYY-000009. Did you mean EQ-YYYY-000005?

> /equip view EQ-YYYY-00003
No equipment EQ-YYYY-00003. Did you mean EQ-YYYY-000003?

> /equip view hydraulic press
No equipment hydraulic press. Find it with /equip search TEXT.

> /equip view
Usage: /equip view EQ-NUMBER|TEXT
