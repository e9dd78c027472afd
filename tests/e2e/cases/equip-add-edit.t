# /equip add and /equip edit: success, usage errors, bad values, limits.

set: F200=$(printf 'y%.0s' {1..200})
set: F201=$(printf 'z%.0s' {1..201})

=== /equip add with every option, quoted words and criticality aliases
run: rivet chat --echo
---
> /equip add Siemens G120C serial=XAJ123 location=Line 2 bay 4 name=Main drive criticality=high
✅ Added EQ-YYYY-000001
Siemens G120C
Name: Main drive
Serial: XAJ123
Location: Line 2 bay 4
Criticality: 🟠 high
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

> /equip add "ABB Drives" "ACS 580 PN" location=Line 1
✅ Added EQ-YYYY-000002
ABB Drives ACS 580 PN
Location: Line 1
Criticality: 🟡 medium
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

> /equip add Atlas GA30 criticality=crit name=
✅ Added EQ-YYYY-000003
Atlas GA30
Criticality: 🔴 critical
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

> /equip new Festo DSBC criticality=LOW
✅ Added EQ-YYYY-000004
Festo DSBC
Criticality: 🔵 low
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

=== option values may be quoted, with straight or typographic quotes
run: rivet chat --echo
---
> /equip add Siemens "G120C PN" name="Main drive" serial="AB 12"
✅ Added EQ-YYYY-000005
Siemens G120C PN
Name: Main drive
Serial: AB 12
Criticality: 🟡 medium
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

> /equip add Siemens G120C location='Hall B' criticality="low"
✅ Added EQ-YYYY-000006
Siemens G120C
Location: Hall B
Criticality: 🔵 low
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

> /equip add Siemens G120C location=“Hall C” name=Spare
✅ Added EQ-YYYY-000007
Siemens G120C
Name: Spare
Location: Hall C
Criticality: 🟡 medium
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

=== a field of exactly 200 characters is accepted
run: rivet chat --echo
---
> /equip add Grundfos CR10 name=${F200}
✅ Added EQ-YYYY-000008
Grundfos CR10
Name: ${F200}
Criticality: 🟡 medium
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

=== /equip add without a model, or with stray words, gets the usage line
run: rivet chat --echo
---
> /equip add
Usage: /equip add MANUFACTURER MODEL [serial=…] [location=…] [name=…] [criticality=…]

> /equip add Siemens
Usage: /equip add MANUFACTURER MODEL [serial=…] [location=…] [name=…] [criticality=…]

> /equip add Siemens serial=XAJ999
Usage: /equip add MANUFACTURER MODEL [serial=…] [location=…] [name=…] [criticality=…]

> /equip add Siemens G120C PN
Usage: /equip add MANUFACTURER MODEL [serial=…] [location=…] [name=…] [criticality=…]

Put a model with spaces in quotes: /equip add Siemens "G120C PN"

=== /equip add with a bad criticality, a doubled option or a field over 200 characters is refused
run: rivet chat --echo
---
> /equip add Siemens G120C criticality=extreme
Criticality must be low, medium, high or critical.

> /equip add Siemens G120C serial=A serial=B
serial=B is given twice.

> /equip add Siemens G120C name=${F201}
The name is too long (201 characters; at most 200).

> /equip add ${F201} G120C
The manufacturer is too long (201 characters; at most 200).

> /equip add Siemens G120C location=${F201}
The location is too long (201 characters; at most 200).

=== nothing was added by the refused commands
run: rivet chat --echo
---
> /equip list
🏭 Equipment (8)
EQ-YYYY-000008 · Grundfos CR10 — yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy…
EQ-YYYY-000007 · Siemens G120C — Spare · Hall C
EQ-YYYY-000006 · Siemens G120C · Hall B
EQ-YYYY-000005 · Siemens G120C PN — Main drive
EQ-YYYY-000004 · Festo DSBC
EQ-YYYY-000003 · Atlas GA30
EQ-YYYY-000002 · ABB Drives ACS 580 PN · Line 1
EQ-YYYY-000001 · Siemens G120C — Main drive · Line 2 bay 4

=== /equip edit changes fields
run: rivet chat --echo
---
> /equip edit EQ-YYYY-000001 location=Line 3 bay 1 serial=NEW-1 criticality=low
✏️ Updated EQ-YYYY-000001
Siemens G120C
Name: Main drive
Serial: NEW-1
Location: Line 3 bay 1
Criticality: 🔵 low
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

> /equip edit EQ-YYYY-000001 manufacturer="Siemens AG" name="Old drive"
✏️ Updated EQ-YYYY-000001
Siemens AG G120C
Name: Old drive
Serial: NEW-1
Location: Line 3 bay 1
Criticality: 🔵 low
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

> /equip edit eq-YYYY-000001 location="Line 4"
✏️ Updated EQ-YYYY-000001
Siemens AG G120C
Name: Old drive
Serial: NEW-1
Location: Line 4
Criticality: 🔵 low
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

=== /equip edit with an empty value clears name, serial and location
run: rivet chat --echo
---
> /equip edit EQ-YYYY-000001 name= serial=""
✏️ Updated EQ-YYYY-000001
Siemens AG G120C
Location: Line 4
Criticality: 🔵 low
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

> /equip edit EQ-YYYY-000001 location=
✏️ Updated EQ-YYYY-000001
Siemens AG G120C
Criticality: 🔵 low
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

=== /equip edit refuses to empty the manufacturer or model
run: rivet chat --echo
---
> /equip edit EQ-YYYY-000001 model=
The model is empty.

> /equip edit EQ-YYYY-000001 manufacturer=
The manufacturer is empty.

=== /equip edit of an unknown field names the fields
run: rivet chat --echo
---
> /equip edit EQ-YYYY-000001 colour=red
I can't change "colour=red". Fields: name, manufacturer, model, serial, location, criticality, device; e.g. location="Line 3".

> /equip edit EQ-YYYY-000001 Line 4
I can't change "Line". Fields: name, manufacturer, model, serial, location, criticality, device; e.g. location="Line 3".

=== /equip edit with bad values is refused
run: rivet chat --echo
---
> /equip edit EQ-YYYY-000001 criticality=bogus
Criticality must be low, medium, high or critical.

> /equip edit EQ-YYYY-000001 location=${F201}
The location is too long (201 characters; at most 200).

> /equip edit EQ-YYYY-000001 serial=A serial=B
serial=B is given twice.

=== /equip edit of an unknown machine says not found, with a suggestion
run: rivet chat --echo
---
> /equip edit EQ-YYYY-000042 location=x
No equipment EQ-YYYY-000042. Did you mean EQ-YYYY-000002?

=== /equip edit without a valid number or without fields gets the usage line
run: rivet chat --echo
---
> /equip edit
Usage: /equip edit EQ-NUMBER FIELD=VALUE …

> /equip edit EQ-YYYY-000001
Usage: /equip edit EQ-NUMBER FIELD=VALUE …

> /equip edit 1 location=x
Usage: /equip edit EQ-NUMBER FIELD=VALUE …

> /equip edit EQ-12 location=x
Usage: /equip edit EQ-NUMBER FIELD=VALUE …

> /equip edit location=x
Usage: /equip edit EQ-NUMBER FIELD=VALUE …

=== the refused edits changed nothing
run: rivet chat --echo
---
> /equip view EQ-YYYY-000001
🏭 EQ-YYYY-000001
Siemens AG G120C
Criticality: 🔵 low
Added YYYY-MM-DD HH:MM by Admin

No open work orders.
