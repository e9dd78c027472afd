# A stranger (`--user` of someone in no factory) is refused everything until
# they join with an invite code from `rivet invite create`; codes are single
# use unless --uses says otherwise, and expire.

=== an admin creates a factory
run: rivet factory create "Plant North"
---
created factory Plant North (slug plant-north)

=== a stranger is refused for every command and for plain text
run: rivet chat --user "Carol Diaz" --echo
---
> /start
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /help
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /help equip
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /equip list
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /equip search pump
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /equip view EQ-YYYY-000001
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /equip add Siemens G120C
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /equip edit EQ-YYYY-000001 location=Line 9
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /wo list
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /wo view WO-YYYY-000001
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /wo new EQ-YYYY-000001 Leak
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /wo status WO-YYYY-000001 done
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /wo note WO-YYYY-000001 hello
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /wo assign WO-YYYY-000001 me
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /stats
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> /frobnicate
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

> hello?
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

=== invalid codes are refused
run: rivet chat --user "Carol Diaz" --echo
---
> /start ABCD-EFGH-JKLM
That invite code is not valid: it may be mistyped, used up or expired. Ask your supervisor for a new one.

> /start garbage
That invite code is not valid: it may be mistyped, used up or expired. Ask your supervisor for a new one.

> /start '; DELETE FROM invites; --
That invite code is not valid: it may be mistyped, used up or expired. Ask your supervisor for a new one.

> /stats
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

=== rivet invite create --quiet prints only the code
run: rivet invite create --factory plant-north --role supervisor --quiet
capture: CODE
---
XXXX-XXXX-XXXX

=== the stranger joins with the code and gets the invite's role and factory
run: rivet chat --user "Carol Diaz" --echo
---
> /start ${CODE}
👋 Welcome to Rivet, Carol Diaz! You joined Plant North as supervisor.
Send /help to see what you can do.

> /start
👋 Welcome back, Carol Diaz. You are supervisor at Plant North.
Send /help to see what Rivet can do.

> /start ${CODE}
You are already a member of Plant North. Send /help to see what Rivet can do.

> /help stats
How to use /stats:

/stats
  the plant at a glance
  e.g. /stats

> /stats
📊 Plant North
Equipment: 0
Work orders: 🟢 open 0 · 🟡 in progress 0 · ⏸ on hold 0 · ✅ completed 0 · 🔴 cancelled 0
Open by priority: 🔴 critical 0 · 🟠 high 0 · 🟡 medium 0 · 🔵 low 0
Open for more than 7 days: 0
🚨 No open alarms

=== a used-up code is refused
run: rivet chat --user dave --echo
---
> /start ${CODE}
That invite code is not valid: it may be mistyped, used up or expired. Ask your supervisor for a new one.

> /equip list
Rivet doesn't know you yet. Ask your supervisor or admin for an invite code, then send:
/start CODE

=== rivet invite create without --quiet explains the code
run: rivet invite create --factory "Plant North" --role technician --uses 2 --expires 12h
capture: CODE2
---
XXXX-XXXX-XXXX
Invite for Plant North as technician, 2 uses, valid for 12 hours.
The new user sends: /start XXXX-XXXX-XXXX

=== a code with two uses lets two people in
set: CODE2=$(printf '%s' "$CODE2" | head -n 1)
set: CODE2_TYPED=$(printf '%s' "$CODE2" | tr -d - | tr A-Z a-z)
run: rivet chat --user dave --echo
---
> /start ${CODE2}
👋 Welcome to Rivet, dave! You joined Plant North as technician.
Send /help to see what you can do.

=== (the second person types the code in lower case without dashes)
run: rivet chat --user erin --echo
---
> /start ${CODE2_TYPED}
👋 Welcome to Rivet, erin! You joined Plant North as technician.
Send /help to see what you can do.

=== ...and nobody else
run: rivet chat --user frank --echo
---
> /start ${CODE2}
That invite code is not valid: it may be mistyped, used up or expired. Ask your supervisor for a new one.

=== (a third code is created)
run: rivet invite create --factory plant-north --role admin --quiet
capture: CODE3

=== (the code's expiry is moved into the past)
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "UPDATE invites SET expires_at = now() - interval '1 minute' WHERE code_sha256 = encode(sha256(convert_to(translate('$CODE3', '-', ''), 'UTF8')), 'hex') RETURNING role"
---
admin

=== an expired code is refused
run: rivet chat --user gina --echo
---
> /start ${CODE3}
That invite code is not valid: it may be mistyped, used up or expired. Ask your supervisor for a new one.

=== members of one factory do not see another factory's equipment
run: echo '/equip add Siemens G120C name=Demo drive' | rivet chat >/dev/null && rivet chat --user "Carol Diaz" --echo
---
> /equip list
No equipment yet. Add a machine:
/equip add Siemens G120C serial=… location=…

> /equip view EQ-YYYY-000001
No equipment EQ-YYYY-000001. Find it with /equip search TEXT.

> /equip search siemens
No equipment matches "siemens". Try fewer words, or /equip list.
