# Bad input in every free-text argument: a 10 KB line, control characters,
# invalid UTF-8. Each gets a clear reply and changes nothing in the
# database (compared before and after with psql).

set: LONG=$(printf 'x%.0s' {1..10240})
set: SOH=$'\x01'
set: ESC=$'\x1b'
set: DEL=$'\x7f'
set: C1=$'\xc2\x85'
set: RLO=$'\xe2\x80\xae'
set: BOM=$'\xef\xbb\xbf'
set: BAD=$'\xff\xfe'
set: CUT=$'caf\xc3'
set: OVERLONG=$'\xc0\xaf'
set: SURROGATE=$'\xed\xa0\x80'
set: TABLES='factories users invites equipment work_orders work_order_events number_sequences'

=== (a machine, a work order and a technician)
stdin: /equip add Siemens G120C name=Main drive
stdin: /wo new EQ-YYYY-000001 Coolant leak
run: rivet chat >/dev/null && rivet invite create --factory demo --role technician --quiet >code && echo "/start $(cat code)" | rivet chat --user bob >/dev/null

=== (the database before: a digest of every table)
run: for t in $TABLES; do psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT '$t', count(*), md5(string_agg(t::text, '/' ORDER BY t::text)) FROM $t t"; done >before && cut -d '|' -f 1,2 before
---
factories|1
users|2
invites|1
equipment|1
work_orders|1
work_order_events|1
number_sequences|2

=== a 10 KB line is refused as too long
run: rivet chat --echo
---
> ${LONG}
That message is too long (10240 bytes; the limit is 4096). Nothing was changed.

> /wo note WO-YYYY-000001 ${LONG}
That message is too long (10264 bytes; the limit is 4096). Nothing was changed.

> /equip add Siemens ${LONG}
That message is too long (10259 bytes; the limit is 4096). Nothing was changed.

> /wo new EQ-YYYY-000001 ${LONG}
That message is too long (10263 bytes; the limit is 4096). Nothing was changed.

=== control characters in any argument are refused
run: rivet chat --echo
---
> /equip add Sie${SOH}mens G120C
That message contains control characters. Please send plain text; nothing was changed.

> /equip add Siemens G120C name=Main${ESC}[31m drive
That message contains control characters. Please send plain text; nothing was changed.

> /equip edit EQ-YYYY-000001 location=Line${DEL}2
That message contains control characters. Please send plain text; nothing was changed.

> /equip search sie${SOH}mens
That message contains control characters. Please send plain text; nothing was changed.

> /equip view Siemens${C1}
That message contains control characters. Please send plain text; nothing was changed.

> /wo new EQ-YYYY-000001 Leak${SOH}
That message contains control characters. Please send plain text; nothing was changed.

> /wo note WO-YYYY-000001 bell${SOH}
That message contains control characters. Please send plain text; nothing was changed.

> /wo assign WO-YYYY-000001 bo${ESC}b
That message contains control characters. Please send plain text; nothing was changed.

> /wo status WO-YYYY-000001 done${SOH}
That message contains control characters. Please send plain text; nothing was changed.

> hello${SOH}
That message contains control characters. Please send plain text; nothing was changed.

> /wo note WO-YYYY-000001 invoice_${RLO}fdp.exe
That message contains control characters. Please send plain text; nothing was changed.

> /equip add Siemens G120C${BOM}
That message contains control characters. Please send plain text; nothing was changed.

=== invalid UTF-8 in any argument is refused
run: rivet chat --echo
---
> /equip add ${BAD} G120C
That message is not valid UTF-8 text. Nothing was changed.

> /equip add Siemens G120C location=${CUT}
That message is not valid UTF-8 text. Nothing was changed.

> /equip edit EQ-YYYY-000001 name=${OVERLONG}
That message is not valid UTF-8 text. Nothing was changed.

> /equip search ${SURROGATE}
That message is not valid UTF-8 text. Nothing was changed.

> /wo new EQ-YYYY-000001 ${CUT}
That message is not valid UTF-8 text. Nothing was changed.

> /wo note WO-YYYY-000001 ${BAD}
That message is not valid UTF-8 text. Nothing was changed.

> /wo assign WO-YYYY-000001 ${BAD}
That message is not valid UTF-8 text. Nothing was changed.

> ${BAD}
That message is not valid UTF-8 text. Nothing was changed.

=== a NUL byte inside a line is refused
run: printf '/wo note WO-%s-000001 a\0b\n' "$YEAR" | rivet chat
---
That message contains control characters. Please send plain text; nothing was changed.

=== a stranger's bad input gets the same replies
run: rivet chat --user mallory --echo
---
> /start ${BAD}
That message is not valid UTF-8 text. Nothing was changed.

> /start ${SOH}
That message contains control characters. Please send plain text; nothing was changed.

> /start ${LONG}
That message is too long (10247 bytes; the limit is 4096). Nothing was changed.

=== the technician's bad input changes nothing either
run: rivet chat --user bob --echo
---
> /wo note WO-YYYY-000001 ${BAD}
That message is not valid UTF-8 text. Nothing was changed.

> /wo status WO-YYYY-000001 ${SOH}done
That message contains control characters. Please send plain text; nothing was changed.

=== nothing changed in the database
run: for t in $TABLES; do psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT '$t', count(*), md5(string_agg(t::text, '/' ORDER BY t::text)) FROM $t t"; done >after && diff before after && echo unchanged
---
unchanged

=== ...as the plant's own view confirms
run: rivet chat --echo
---
> /equip list
🏭 Equipment (1)
EQ-YYYY-000001 · Siemens G120C — Main drive

> /wo view WO-YYYY-000001
🛠 WO-YYYY-000001 · Coolant leak
Status: 🟢 open · Priority: 🟡 medium
Equipment: EQ-YYYY-000001 Siemens G120C (Main drive)
Assigned to: nobody
Opened YYYY-MM-DD HH:MM by Admin

History:
YYYY-MM-DD HH:MM Admin: opened

> /stats
📊 demo
Equipment: 1
Work orders: 🟢 open 1 · 🟡 in progress 0 · ⏸ on hold 0 · ✅ completed 0 · 🔴 cancelled 0
Open by priority: 🔴 critical 0 · 🟠 high 0 · 🟡 medium 1 · 🔵 low 0
Open for more than 7 days: 0
Most open work orders: EQ-YYYY-000001 Siemens G120C (Main drive) (1)
🚨 No open alarms
