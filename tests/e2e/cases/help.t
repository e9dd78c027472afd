# /help, /help COMMAND, unknown commands and plain text, as the admin of the
# default factory "demo" (which `rivet chat` creates).

=== /help lists every command with an example
run: rivet chat --echo
---
> /help
Rivet commands:

/start [CODE]
  join your factory with an invite code
  e.g. /start K7QM-3XHP-RT2A

/help [COMMAND]
  all commands, or one in detail
  e.g. /help wo

/link
  a one-time code to use Rivet from your other app (Telegram or WhatsApp)
  e.g. /link

/link CODE
  sent from the other app: that chat becomes you, same work orders and alarms
  e.g. /link K7Q-M3X-HPR

/unlink telegram|whatsapp
  remove an app from your user (send it from the other one)
  e.g. /unlink whatsapp

/equip list [PAGE]
  equipment, newest first
  e.g. /equip list 2

/equip search TEXT
  find machines; typos are fine
  e.g. /equip search simens g120

/equip view EQ-NUMBER|TEXT
  one machine and its open work orders
  e.g. /equip view EQ-2026-000001

/equip add MANUFACTURER MODEL [serial=…] [location=…] [name=…] [criticality=…]
  register a machine
  e.g. /equip add Siemens G120C serial=XAJ123 location=Line 2

/equip edit EQ-NUMBER FIELD=VALUE …
  change name, manufacturer, model, serial, location or criticality (supervisors and admins)
  e.g. /equip edit EQ-2026-000001 location=Line 3

/equip edit EQ-NUMBER device=KEY|-
  link the telemetry device that watches this machine (- unlinks; supervisors and admins)
  e.g. /equip edit EQ-2026-000001 device=press-3

/wo list [open|mine|all|STATUS] [PAGE]
  work orders, most urgent first
  e.g. /wo list mine

/wo view WO-NUMBER
  one work order with its history
  e.g. /wo view WO-2026-000001

/wo new EQ-NUMBER TITLE [priority=low|medium|high|critical]
  open a work order on a machine
  e.g. /wo new EQ-2026-000001 Coolant leak at pump priority=high

/wo status WO-NUMBER open|in_progress|on_hold|completed|cancelled
  move a work order along (cancelling and reopening: supervisors and admins)
  e.g. /wo status WO-2026-000001 completed

/wo note WO-NUMBER TEXT
  add a note
  e.g. /wo note WO-2026-000001 Seal replaced

/wo assign WO-NUMBER USER|me
  take it yourself (me), or give it to someone (supervisors and admins)
  e.g. /wo assign WO-2026-000001 me

/wo alarm ID
  open a work order for an alarm's machine
  e.g. /wo alarm 12

/stats
  the plant at a glance
  e.g. /stats

📷 a photo of a nameplate
  Rivet reads it and offers to register the machine; a caption is kept as its location
  e.g. a photo captioned "Line 2 pump room"

/photo edit READ FIELD=VALUE …
  correct what was read before saving
  e.g. /photo edit 12 serial=XJ123

/photo save|wo|discard READ
  save the machine, save it and open a work order, or drop the read
  e.g. /photo save 12

/photo link READ EQ-NUMBER
  add the nameplate to a machine already registered
  e.g. /photo link 12 EQ-2026-000001

/alerts [PAGE]
  open alarms, newest first
  e.g. /alerts

/alerts #ID
  one alarm, with what can be done about it
  e.g. /alerts #12

/ack ID
  acknowledge an alarm: you are on it, and everyone who got it sees so
  e.g. /ack 12

/resolve ID
  close an alarm that is dealt with
  e.g. /resolve 12

/subscribe [low|medium|high|critical] [DEVICE…]
  choose the alarms you get (at first: high and critical from every device)
  e.g. /subscribe medium press-3

/unsubscribe [DEVICE…|all]
  stop alarms from some devices, or all
  e.g. /unsubscribe press-3

/mute DEVICE|all|#ALARM DURATION|off
  silence a device for 1m to 30d
  e.g. /mute press-3 8h

/rules
  the factory's alert rules (supervisors and admins)
  e.g. /rules

Status: 🟢 open · 🟡 in progress · ⏸ on hold · ✅ completed · 🔴 cancelled
Priority and alarm severity: 🔵 low · 🟡 medium · 🟠 high · 🔴 critical

=== /help COMMAND shows that command's usages, with or without the slash, any case
run: rivet chat --echo
---
> /help equip
How to use /equip:

/equip list [PAGE]
  equipment, newest first
  e.g. /equip list 2

/equip search TEXT
  find machines; typos are fine
  e.g. /equip search simens g120

/equip view EQ-NUMBER|TEXT
  one machine and its open work orders
  e.g. /equip view EQ-2026-000001

/equip add MANUFACTURER MODEL [serial=…] [location=…] [name=…] [criticality=…]
  register a machine
  e.g. /equip add Siemens G120C serial=XAJ123 location=Line 2

/equip edit EQ-NUMBER FIELD=VALUE …
  change name, manufacturer, model, serial, location or criticality (supervisors and admins)
  e.g. /equip edit EQ-2026-000001 location=Line 3

/equip edit EQ-NUMBER device=KEY|-
  link the telemetry device that watches this machine (- unlinks; supervisors and admins)
  e.g. /equip edit EQ-2026-000001 device=press-3

> /HELP /WO
How to use /wo:

/wo list [open|mine|all|STATUS] [PAGE]
  work orders, most urgent first
  e.g. /wo list mine

/wo view WO-NUMBER
  one work order with its history
  e.g. /wo view WO-2026-000001

/wo new EQ-NUMBER TITLE [priority=low|medium|high|critical]
  open a work order on a machine
  e.g. /wo new EQ-2026-000001 Coolant leak at pump priority=high

/wo status WO-NUMBER open|in_progress|on_hold|completed|cancelled
  move a work order along (cancelling and reopening: supervisors and admins)
  e.g. /wo status WO-2026-000001 completed

/wo note WO-NUMBER TEXT
  add a note
  e.g. /wo note WO-2026-000001 Seal replaced

/wo assign WO-NUMBER USER|me
  take it yourself (me), or give it to someone (supervisors and admins)
  e.g. /wo assign WO-2026-000001 me

/wo alarm ID
  open a work order for an alarm's machine
  e.g. /wo alarm 12

> /help stats
How to use /stats:

/stats
  the plant at a glance
  e.g. /stats

> /help start
How to use /start:

/start [CODE]
  join your factory with an invite code
  e.g. /start K7QM-3XHP-RT2A

> /help help
How to use /help:

/help [COMMAND]
  all commands, or one in detail
  e.g. /help wo

=== /help of an unknown command says so, with a suggestion when one is close
run: rivet chat --echo
---
> /help eqip
There is no command /eqip. Did you mean /equip? Send /help for the list.

> /help xyzzy
There is no command /xyzzy. Send /help for the list.

=== /start as a known user welcomes them back with factory and role
run: rivet chat --echo
---
> /start
👋 Welcome back, Admin. You are admin at demo.
Send /help to see what Rivet can do.

=== unknown commands get "Did you mean", plain text the plain-words hint
run: rivet chat --echo
---
> /eqip list
Unknown command /eqip. Did you mean /equip? Send /help for the list.

> /statz
Unknown command /statz. Did you mean /stats? Send /help for the list.

> /stat
Unknown command /stat. Did you mean /stats? Send /help for the list.

> /WOO
Unknown command /woo. Did you mean /wo? Send /help for the list.

> /frobnicate now
Unknown command /frobnicate. Send /help for the list.

> hello, is anyone there?
I can only do maintenance actions here: no assistant is set up for questions.

Try it in plain words:
• "pump 3 on line 2 is leaking" to report a fault
• "what's open on pump 3" · "status of WO-2026-000012"
• "my work orders" · "what's open" · "any alarms"
Or the commands: /equip · /wo · /stats · /alerts · /help

> equip list
Commands start with a slash: did you mean /equip list?

> thanks
I didn't get that. Try it in plain words:
• "pump 3 on line 2 is leaking" to report a fault
• "what's open on pump 3" · "status of WO-2026-000012"
• "my work orders" · "what's open" · "any alarms"
Or the commands: /equip · /wo · /stats · /alerts · /help

=== empty and blank lines get no reply
run: printf '\n   \n\t\n/stats now\n' | rivet chat
---
Usage: /stats
