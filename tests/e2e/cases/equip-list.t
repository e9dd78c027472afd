# /equip list: empty, 10 per page newest first with a page indicator and a
# "Next:" line, pages out of range and bad page arguments.

=== an empty plant says how to add a machine
run: rivet chat --echo
---
> /equip list
No equipment yet. Add a machine:
/equip add Siemens G120C serial=… location=…

> /equip
No equipment yet. Add a machine:
/equip add Siemens G120C serial=… location=…

> /equip list 2
No equipment yet. Add a machine:
/equip add Siemens G120C serial=… location=…

=== (twelve machines are added)
stdin: /equip add Siemens G120C serial=XAJ123 location=Line 2 bay 4 name=Main drive
stdin: /equip add ABB "ACS 580" location=Line 1
stdin: /equip add Grundfos CR10 name=Coolant pump location=Line 2
stdin: /equip add Grundfos CR15 name=Spare pump
stdin: /equip add Atlas GA30
stdin: /equip add Festo DSBC
stdin: /equip add SEW R47
stdin: /equip add Fanuc R2000
stdin: /equip add KUKA KR210
stdin: /equip add Omron NX1P
stdin: /equip add Mitsubishi FR-A800
stdin: /equip add Danfoss FC302
run: rivet chat | grep -c '^✅ Added EQ-'
---
12

=== twelve machines make two pages, newest first, with a Next: line
run: rivet chat --echo
---
> /equip list
🏭 Equipment (12) · page 1 of 2
EQ-YYYY-000012 · Danfoss FC302
EQ-YYYY-000011 · Mitsubishi FR-A800
EQ-YYYY-000010 · Omron NX1P
EQ-YYYY-000009 · KUKA KR210
EQ-YYYY-000008 · Fanuc R2000
EQ-YYYY-000007 · SEW R47
EQ-YYYY-000006 · Festo DSBC
EQ-YYYY-000005 · Atlas GA30
EQ-YYYY-000004 · Grundfos CR15 — Spare pump
EQ-YYYY-000003 · Grundfos CR10 — Coolant pump · Line 2
Next: /equip list 2

> /equip list 2
🏭 Equipment (12) · page 2 of 2
EQ-YYYY-000002 · ABB ACS 580 · Line 1
EQ-YYYY-000001 · Siemens G120C — Main drive · Line 2 bay 4

> /EQUIP LIST 1
🏭 Equipment (12) · page 1 of 2
EQ-YYYY-000012 · Danfoss FC302
EQ-YYYY-000011 · Mitsubishi FR-A800
EQ-YYYY-000010 · Omron NX1P
EQ-YYYY-000009 · KUKA KR210
EQ-YYYY-000008 · Fanuc R2000
EQ-YYYY-000007 · SEW R47
EQ-YYYY-000006 · Festo DSBC
EQ-YYYY-000005 · Atlas GA30
EQ-YYYY-000004 · Grundfos CR15 — Spare pump
EQ-YYYY-000003 · Grundfos CR10 — Coolant pump · Line 2
Next: /equip list 2

=== a page past the end says how many pages there are
run: rivet chat --echo
---
> /equip list 3
There is no page 3; the list has 2 pages.

> /equip list 100000
There is no page 100000; the list has 2 pages.

=== a bad page argument gets the usage line
run: rivet chat --echo
---
> /equip list 0
Usage: /equip list [PAGE]

> /equip list -1
Usage: /equip list [PAGE]

> /equip list two
Usage: /equip list [PAGE]

> /equip list 2x
Usage: /equip list [PAGE]

> /equip list 1 2
Usage: /equip list [PAGE]

> /equip list 99999999999999999999999
Usage: /equip list [PAGE]
