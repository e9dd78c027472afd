# Nameplate photos through the console channel: /photo PATH [caption] reads
# the image with Tesseract. What a read finds depends on Tesseract, so the
# good photo's steps check the lines that matter and the database; the
# refusals, which do not, are whole transcripts.

=== (the generated plates, reachable from the steps' folder)
run: ln -s "$FIXTURES/nameplates/set" plates

=== empty, damaged, non-image, tiny and missing files are refused with a reason
run: rivet chat --echo
---
> /photo plates/bad-empty.jpg
The file is empty.

> /photo plates/bad-truncated.jpg
The image is damaged or cut short; please send it again.

> /photo plates/bad-text.jpg
That is not a photo Rivet can read: send a JPEG, PNG, WebP or TIFF image.

> /photo plates/bad-1x1.png
The image is too small to read a nameplate from; send a larger photo.

> /photo plates/no-such-file.jpg
Rivet cannot open that file. Give the path of an image: /photo PATH [caption]

> /photo
📷 Send a photo of a machine's nameplate: Rivet reads it and offers to register the machine. A caption is kept as its location.

=== ...and none of them stored anything
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT (SELECT count(*) FROM nameplate_reads) || ' ' || (SELECT count(*) FROM equipment)"
---
0 0

=== a plate is read, shown with its buttons, and nothing is saved before the tap
run: rivet chat --buttons <<< '/photo plates/015-hvac-fr.jpg Roof, unit 3' | grep -e '^Manufacturer' -e '^Model' -e '^Serial' -e '^Note' -e 'Save as new'
---
Manufacturer: Lennox
Model: XC21-068-230-00
Serial: 7802E25086
Note: Roof, unit 3
[ ✅ Save as new | /photo save 1 ]

=== (no machine yet)
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT count(*) FROM equipment"
---
0

=== ✅ Save as new registers it with the caption as location
run: rivet chat --echo | grep -v '^Nameplate:'
---
> /photo save 1
✅ Saved as EQ-YYYY-000001
Lennox XC21-068-230-00
Serial: 7802E25086
Location: Roof, unit 3
Criticality: 🟡 medium
Added YYYY-MM-DD HH:MM by Admin

No open work orders.

> /photo save 1
That photo is already registered as EQ-YYYY-000001.

=== the machine keeps the photo's hash and the plate's fields
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT manufacturer, model, serial, length(photo_sha256), nameplate->'serial'->>'source' FROM equipment"
---
Lennox|XC21-068-230-00|7802E25086|64|ocr

=== the same photo again is not read again: it names the machine
run: rivet chat <<< '/photo plates/015-hvac-fr.jpg' | grep -o -e 'seen before' -e 'Registered as EQ-[0-9-]*'
---
seen before
Registered as EQ-YYYY-000001

=== one read in all
run: psql -XAtq -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "SELECT count(*), min(status) FROM nameplate_reads"
---
1|saved
