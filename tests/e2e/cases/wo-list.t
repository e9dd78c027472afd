# /wo list on an empty plant, and paging with 10 per page.

=== an empty plant has no work orders to list
run: rivet chat --echo
---
> /wo list
No open work orders. 🎉

> /wo
No open work orders. 🎉

> /wo list all
No work orders here yet. Open one: /wo new EQ-NUMBER TITLE

> /wo list mine
No open work orders are assigned to you.

=== (one machine, eleven open work orders, the last one urgent, and one completed)
stdin: /equip add Siemens G120C
stdin: /wo new EQ-YYYY-000001 Job 1
stdin: /wo new EQ-YYYY-000001 Job 2
stdin: /wo new EQ-YYYY-000001 Job 3
stdin: /wo new EQ-YYYY-000001 Job 4
stdin: /wo new EQ-YYYY-000001 Job 5
stdin: /wo new EQ-YYYY-000001 Job 6
stdin: /wo new EQ-YYYY-000001 Job 7
stdin: /wo new EQ-YYYY-000001 Job 8
stdin: /wo new EQ-YYYY-000001 Job 9
stdin: /wo new EQ-YYYY-000001 Job 10
stdin: /wo new EQ-YYYY-000001 Job 11 priority=critical
stdin: /wo new EQ-YYYY-000001 Job 12
stdin: /wo status WO-YYYY-000012 done
run: rivet chat | grep -c '^✅ '
---
14

=== the first page has ten, a page indicator and a Next: line
run: rivet chat --echo
---
> /wo list
🛠 Open work orders (11) · page 1 of 2
🔴 WO-YYYY-000011 🟢 Job 11 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000001 🟢 Job 1 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000002 🟢 Job 2 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000003 🟢 Job 3 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000004 🟢 Job 4 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000005 🟢 Job 5 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000006 🟢 Job 6 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000007 🟢 Job 7 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000008 🟢 Job 8 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000009 🟢 Job 9 · EQ-YYYY-000001 Siemens G120C · 0d
Next: /wo list 2

> /wo list 2
🛠 Open work orders (11) · page 2 of 2
🟡 WO-YYYY-000010 🟢 Job 10 · EQ-YYYY-000001 Siemens G120C · 0d

=== a filter keeps its word in the Next: line
run: rivet chat --echo
---
> /wo list all
🛠 All work orders (12) · page 1 of 2
🔴 WO-YYYY-000011 🟢 Job 11 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000001 🟢 Job 1 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000002 🟢 Job 2 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000003 🟢 Job 3 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000004 🟢 Job 4 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000005 🟢 Job 5 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000006 🟢 Job 6 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000007 🟢 Job 7 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000008 🟢 Job 8 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000009 🟢 Job 9 · EQ-YYYY-000001 Siemens G120C · 0d
Next: /wo list all 2

> /wo list all 2
🛠 All work orders (12) · page 2 of 2
🟡 WO-YYYY-000010 🟢 Job 10 · EQ-YYYY-000001 Siemens G120C · 0d
🟡 WO-YYYY-000012 ✅ Job 12 · EQ-YYYY-000001 Siemens G120C · 0d

> /wo list open 2
🛠 Open work orders (11) · page 2 of 2
🟡 WO-YYYY-000010 🟢 Job 10 · EQ-YYYY-000001 Siemens G120C · 0d

=== a page past the end says how many pages there are
run: rivet chat --echo
---
> /wo list 3
There is no page 3; the list has 2 pages.

> /wo list completed 2
There is no page 2; the list has 1 page.

=== bad arguments get the usage line
run: rivet chat --echo
---
> /wo list 0
Usage: /wo list [open|mine|all|STATUS] [PAGE]

> /wo list open two
Usage: /wo list [open|mine|all|STATUS] [PAGE]

> /wo list 2 open
Usage: /wo list [open|mine|all|STATUS] [PAGE]

> /wo list open 1 2
Usage: /wo list [open|mine|all|STATUS] [PAGE]

> /wo list everything
Usage: /wo list [open|mine|all|STATUS] [PAGE]

=== the machine's card counts all its open work orders and shows the first ten
run: rivet chat --echo
---
> /equip view EQ-YYYY-000001
🏭 EQ-YYYY-000001
Siemens G120C
Criticality: 🟡 medium
Added YYYY-MM-DD HH:MM by Admin

Open work orders: 11
🔴 WO-YYYY-000011 🟢 Job 11
🟡 WO-YYYY-000001 🟢 Job 1
🟡 WO-YYYY-000002 🟢 Job 2
🟡 WO-YYYY-000003 🟢 Job 3
🟡 WO-YYYY-000004 🟢 Job 4
🟡 WO-YYYY-000005 🟢 Job 5
🟡 WO-YYYY-000006 🟢 Job 6
🟡 WO-YYYY-000007 🟢 Job 7
🟡 WO-YYYY-000008 🟢 Job 8
🟡 WO-YYYY-000009 🟢 Job 9
…and 1 more, less urgent.
