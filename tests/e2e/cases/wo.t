# /wo new, status, note, assign and view, with their error paths, as the
# admin of "demo" and as a technician who joined with an invite.

set: F201=$(printf 'z%.0s' {1..201})

=== (two machines)
stdin: /equip add Siemens G120C name=Main drive location=Line 2
stdin: /equip add Grundfos CR10
run: rivet chat | grep -c '^✅ Added'
---
2

=== (a technician joins)
run: rivet invite create --factory demo --role technician --quiet >code && echo "/start $(cat code)" | rivet chat --user "Bob Stone"
---
👋 Welcome to Rivet, Bob Stone! You joined demo as technician.
Send /help to see what you can do.

=== /wo new opens work orders with a priority (medium by default)
run: rivet chat --echo
---
> /wo new EQ-YYYY-000001 Coolant leak at pump priority=high
✅ Opened 🟠 WO-YYYY-000001 high · Coolant leak at pump
Equipment: EQ-YYYY-000001 Siemens G120C (Main drive)
Move it along: /wo status WO-YYYY-000001 in_progress

> /wo new EQ-YYYY-000002 Belt squeal priority=low
✅ Opened 🔵 WO-YYYY-000002 low · Belt squeal
Equipment: EQ-YYYY-000002 Grundfos CR10
Move it along: /wo status WO-YYYY-000002 in_progress

> /wo new EQ-YYYY-000001 priority=urgent Fault F0001 on display
✅ Opened 🔴 WO-YYYY-000003 critical · Fault F0001 on display
Equipment: EQ-YYYY-000001 Siemens G120C (Main drive)
Move it along: /wo status WO-YYYY-000003 in_progress

> /wo add EQ-YYYY-000002 Check grease
✅ Opened 🟡 WO-YYYY-000004 medium · Check grease
Equipment: EQ-YYYY-000002 Grundfos CR10
Move it along: /wo status WO-YYYY-000004 in_progress

=== /wo new without a machine number gets the usage line and a hint
run: rivet chat --echo
---
> /wo new
Usage: /wo new EQ-NUMBER TITLE [priority=low|medium|high|critical]

> /wo new pump Coolant leak
Usage: /wo new EQ-NUMBER TITLE [priority=low|medium|high|critical]

A work order names its machine first, e.g. /wo new EQ-2026-000001 Coolant leak. Find the number with /equip search TEXT.

=== /wo new without a title gets the usage line
run: rivet chat --echo
---
> /wo new EQ-YYYY-000001
Usage: /wo new EQ-NUMBER TITLE [priority=low|medium|high|critical]

> /wo new EQ-YYYY-000001 priority=high
Usage: /wo new EQ-NUMBER TITLE [priority=low|medium|high|critical]

=== /wo new on an unknown machine says not found, with a suggestion
run: rivet chat --echo
---
> /wo new EQ-YYYY-000020 Leak
No equipment EQ-YYYY-000020. Did you mean EQ-YYYY-000002?

=== /wo new with a bad priority, a doubled priority or a long title is refused
run: rivet chat --echo
---
> /wo new EQ-YYYY-000001 Leak priority=extreme
Priority must be low, medium, high or critical.

> /wo new EQ-YYYY-000001 Leak priority=low priority=high
priority=high is given twice.

> /wo new EQ-YYYY-000001 ${F201}
The title is too long (201 characters; at most 200).

=== /wo list shows open work orders, most urgent first
run: rivet chat --echo
---
> /wo list
🛠 Open work orders (4)
🔴 WO-YYYY-000003 🟢 Fault F0001 on display · EQ-YYYY-000001 Siemens G120C (Main drive) · 0d
🟠 WO-YYYY-000001 🟢 Coolant leak at pump · EQ-YYYY-000001 Siemens G120C (Main drive) · 0d
🟡 WO-YYYY-000004 🟢 Check grease · EQ-YYYY-000002 Grundfos CR10 · 0d
🔵 WO-YYYY-000002 🟢 Belt squeal · EQ-YYYY-000002 Grundfos CR10 · 0d

=== /wo status moves work orders through every status, by name or alias, in any case
run: rivet chat --echo
---
> /wo status WO-YYYY-000001 in_progress
🟡 WO-YYYY-000001 is now in progress. (It was open.)

> /wo status wo-YYYY-000002 hold
⏸ WO-YYYY-000002 is now on hold. (It was open.)

> /wo status WO-YYYY-000002 In-Progress
🟡 WO-YYYY-000002 is now in progress. (It was on hold.)

> /wo status WO-YYYY-000002 on_hold
⏸ WO-YYYY-000002 is now on hold. (It was in progress.)

> /wo status WO-YYYY-000003 cancel
🔴 WO-YYYY-000003 is now cancelled. (It was open.)

> /wo status WO-YYYY-000003 reopen
🟢 WO-YYYY-000003 is now open. (It was cancelled.)

> /wo status WO-YYYY-000003 cancelled
🔴 WO-YYYY-000003 is now cancelled. (It was open.)

> /wo status WO-YYYY-000004 done
✅ WO-YYYY-000004 completed by Admin. (It was open.)

=== setting the status a work order already has says so
run: rivet chat --echo
---
> /wo status WO-YYYY-000001 in_progress
WO-YYYY-000001 is already 🟡 in progress.

> /wo status WO-YYYY-000004 completed
WO-YYYY-000004 is already ✅ completed.

=== /wo status with an unknown status, a missing status or an unknown number is refused
run: rivet chat --echo
---
> /wo status WO-YYYY-000001 finished
Unknown status "finished". Use open, in_progress, on_hold, completed or cancelled.

> /wo status WO-YYYY-000001
Usage: /wo status WO-NUMBER open|in_progress|on_hold|completed|cancelled

> /wo status WO-YYYY-000001 on hold
Usage: /wo status WO-NUMBER open|in_progress|on_hold|completed|cancelled

> /wo status 1 done
Usage: /wo status WO-NUMBER open|in_progress|on_hold|completed|cancelled

> /wo status WO-YYYY-000044 done
No work order WO-YYYY-000044. Did you mean WO-YYYY-000004?

=== /wo list filters: open, all, a status
run: rivet chat --echo
---
> /wo list open
🛠 Open work orders (2)
🟠 WO-YYYY-000001 🟡 Coolant leak at pump · EQ-YYYY-000001 Siemens G120C (Main drive) · 0d
🔵 WO-YYYY-000002 ⏸ Belt squeal · EQ-YYYY-000002 Grundfos CR10 · 0d

> /wo list all
🛠 All work orders (4)
🔴 WO-YYYY-000003 🔴 Fault F0001 on display · EQ-YYYY-000001 Siemens G120C (Main drive) · 0d
🟠 WO-YYYY-000001 🟡 Coolant leak at pump · EQ-YYYY-000001 Siemens G120C (Main drive) · 0d
🟡 WO-YYYY-000004 ✅ Check grease · EQ-YYYY-000002 Grundfos CR10 · 0d
🔵 WO-YYYY-000002 ⏸ Belt squeal · EQ-YYYY-000002 Grundfos CR10 · 0d

> /wo list completed
🛠 Work orders ✅ completed (1)
🟡 WO-YYYY-000004 ✅ Check grease · EQ-YYYY-000002 Grundfos CR10 · 0d

> /wo list cancelled
🛠 Work orders 🔴 cancelled (1)
🔴 WO-YYYY-000003 🔴 Fault F0001 on display · EQ-YYYY-000001 Siemens G120C (Main drive) · 0d

> /wo list hold
🛠 Work orders ⏸ on hold (1)
🔵 WO-YYYY-000002 ⏸ Belt squeal · EQ-YYYY-000002 Grundfos CR10 · 0d

> /wo list in_progress
🛠 Work orders 🟡 in progress (1)
🟠 WO-YYYY-000001 🟡 Coolant leak at pump · EQ-YYYY-000001 Siemens G120C (Main drive) · 0d

> /wo list bogus
Usage: /wo list [open|mine|all|STATUS] [PAGE]

=== /wo note stores text that looks like SQL or markup literally
run: rivet chat --echo
---
> /wo note WO-YYYY-000001 '; DROP TABLE work_orders; --
📝 Note added to WO-YYYY-000001.

> /wo note WO-YYYY-000001 Robert'); DELETE FROM equipment WHERE 1=1; -- <b>bold</b> *stars* %s %n $1 \N
📝 Note added to WO-YYYY-000001.

> /wo note WO-YYYY-000001   Seal   replaced,  see photo  
📝 Note added to WO-YYYY-000001.

=== /wo note without text or on an unknown work order is refused
run: rivet chat --echo
---
> /wo note WO-YYYY-000001
Usage: /wo note WO-NUMBER TEXT

> /wo note hello there
Usage: /wo note WO-NUMBER TEXT

> /wo note WO-YYYY-000099 hello
No work order WO-YYYY-000099. Did you mean WO-YYYY-000004?

=== /wo assign to me and to another member by name, in any case
run: rivet chat --echo
---
> /wo assign WO-YYYY-000001 me
👷 WO-YYYY-000001 is assigned to Admin.

> /wo list mine
🛠 Your open work orders (1)
🟠 WO-YYYY-000001 🟡 Coolant leak at pump · EQ-YYYY-000001 Siemens G120C (Main drive) · 0d → Admin

> /wo assign WO-YYYY-000002 bob stone
👷 WO-YYYY-000002 is assigned to Bob Stone.

=== /wo assign to an unknown name says so, with the closest name
run: rivet chat --echo
---
> /wo assign WO-YYYY-000002 Bob Stoned
No one called "Bob Stoned" here. Did you mean Bob Stone?

> /wo assign WO-YYYY-000002 Zed
No one called "Zed" here.

> /wo assign WO-YYYY-000002
Usage: /wo assign WO-NUMBER USER|me

> /wo assign WO-YYYY-000099 me
No work order WO-YYYY-000099. Did you mean WO-YYYY-000004?

=== the technician sees their work and completing it records who and when
run: rivet chat --user "Bob Stone" --echo
---
> /wo list mine
🛠 Your open work orders (1)
🔵 WO-YYYY-000002 ⏸ Belt squeal · EQ-YYYY-000002 Grundfos CR10 · 0d → Bob Stone

> /wo status WO-YYYY-000002 completed
✅ WO-YYYY-000002 completed by Bob Stone. (It was on hold.)

> /wo list mine
No open work orders are assigned to you.

=== /wo view shows the work order with its history
run: rivet chat --echo
---
> /wo view WO-YYYY-000002
🛠 WO-YYYY-000002 · Belt squeal
Status: ✅ completed · Priority: 🔵 low
Equipment: EQ-YYYY-000002 Grundfos CR10
Assigned to: Bob Stone
Opened YYYY-MM-DD HH:MM by Admin
Completed YYYY-MM-DD HH:MM by Bob Stone

History:
YYYY-MM-DD HH:MM Admin: opened
YYYY-MM-DD HH:MM Admin: open → ⏸ on hold
YYYY-MM-DD HH:MM Admin: on hold → 🟡 in progress
YYYY-MM-DD HH:MM Admin: in progress → ⏸ on hold
YYYY-MM-DD HH:MM Admin: assigned to Bob Stone
YYYY-MM-DD HH:MM Bob Stone: on hold → ✅ completed

> /wo show WO-YYYY-000001
🛠 WO-YYYY-000001 · Coolant leak at pump
Status: 🟡 in progress · Priority: 🟠 high
Equipment: EQ-YYYY-000001 Siemens G120C (Main drive)
Assigned to: Admin
Opened YYYY-MM-DD HH:MM by Admin

History:
YYYY-MM-DD HH:MM Admin: opened
YYYY-MM-DD HH:MM Admin: open → 🟡 in progress
YYYY-MM-DD HH:MM Admin: 📝 '; DROP TABLE work_orders; --
YYYY-MM-DD HH:MM Admin: 📝 Robert'); DELETE FROM equipment WHERE 1=1; -- <b>bold</b> *stars* %s %n $1 \N
YYYY-MM-DD HH:MM Admin: 📝 Seal   replaced,  see photo
YYYY-MM-DD HH:MM Admin: assigned to Admin

> /wo WO-YYYY-000004
🛠 WO-YYYY-000004 · Check grease
Status: ✅ completed · Priority: 🟡 medium
Equipment: EQ-YYYY-000002 Grundfos CR10
Assigned to: nobody
Opened YYYY-MM-DD HH:MM by Admin
Completed YYYY-MM-DD HH:MM by Admin

History:
YYYY-MM-DD HH:MM Admin: opened
YYYY-MM-DD HH:MM Admin: open → ✅ completed

=== /wo view of a bad or unknown number is refused
run: rivet chat --echo
---
> /wo view
Usage: /wo view WO-NUMBER

> /wo view WO-YYYY-000001 extra
Usage: /wo view WO-NUMBER

> /wo view EQ-YYYY-000001
Usage: /wo view WO-NUMBER

> /wo view WO-YYYY-000010
No work order WO-YYYY-000010. Did you mean WO-YYYY-000004?

> /wo frobnicate
Unknown /wo action "frobnicate". Send /help wo.

=== the database holds the notes exactly as typed, and nothing else was deleted
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT count(*) FROM equipment" -c "SELECT count(*) FROM work_orders" -c "SELECT new_value FROM work_order_events WHERE kind = 'note' ORDER BY id"
---
2
4
'; DROP TABLE work_orders; --
Robert'); DELETE FROM equipment WHERE 1=1; -- <b>bold</b> *stars* %s %n $1 \N
Seal   replaced,  see photo

=== assigning to the person who has it already says so and records nothing
run: rivet chat --echo
---
> /wo assign WO-YYYY-000001 me
WO-YYYY-000001 is already assigned to Admin.

> /wo list on_hold
No work orders are ⏸ on hold.

=== a long history shows its last ten events and says how many there are
stdin: /wo note WO-YYYY-000004 one
stdin: /wo note WO-YYYY-000004 two
stdin: /wo note WO-YYYY-000004 three
stdin: /wo note WO-YYYY-000004 four
stdin: /wo note WO-YYYY-000004 five
stdin: /wo note WO-YYYY-000004 six
stdin: /wo note WO-YYYY-000004 seven
stdin: /wo note WO-YYYY-000004 eight
stdin: /wo note WO-YYYY-000004 nine
stdin: /wo view WO-YYYY-000004
run: rivet chat | tail -n 12
---
History (last 10 of 11):
YYYY-MM-DD HH:MM Admin: open → ✅ completed
YYYY-MM-DD HH:MM Admin: 📝 one
YYYY-MM-DD HH:MM Admin: 📝 two
YYYY-MM-DD HH:MM Admin: 📝 three
YYYY-MM-DD HH:MM Admin: 📝 four
YYYY-MM-DD HH:MM Admin: 📝 five
YYYY-MM-DD HH:MM Admin: 📝 six
YYYY-MM-DD HH:MM Admin: 📝 seven
YYYY-MM-DD HH:MM Admin: 📝 eight
YYYY-MM-DD HH:MM Admin: 📝 nine

=== a title or note of nothing but spaces is refused
run: rivet chat --echo
---
> /wo new EQ-YYYY-000001 "   "
The title is empty.

> /wo note WO-YYYY-000001 '  '
The note is empty.

> /equip search "   "
The search text is empty.
