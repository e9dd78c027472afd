/* Field extraction: reads a rating plate's fields out of OCR text.
 *
 * The text (the first TEXT_MAX bytes) is cleaned (controls, NULs, box rules
 * and smart quotes become spaces, a dash is a dash), cut into lines and each
 * line into tokens: labels ("SERIAL NO.", "Isol.-Kl.", "min-1"), numbers
 * ("208-230/460", "46O"), units Rivet does not read ("psi", "BTU/H") and
 * other words. One PCRE2 pattern holds every label, each alternative tagged
 * with (*MARK:index); a second copy tolerates OCR confusions (O/0, I/1/l,
 * S/5, B/8, M/N). Then, in turn:
 *  - tables: a column of labels over a column of values (sparse OCR), a
 *    row of labels over a row of values, a header over rows of numbers;
 *  - each label takes its value after it ("VOLTS 460", alone at the end of
 *    a line: from the next line) or, a unit, before it ("460 V", "1755rpm",
 *    "3~"), a number going to the first label that claims it;
 *  - a few shapes without labels (TEFC, IP55, 208/230-1-60);
 *  - the manufacturer: its label, the alias table anywhere in the text,
 *    a company line ("... Inc.").
 * Every value gets a fit (1.0 for an exact label; less for a label read
 * with confusions, a value on the next line, a bare unit, a table) times
 * the mean confidence of the OCR words it came from. Values are checked
 * for plausibility (a phase is 1 or 3, Hz are 50/60/400..., a motor does
 * not turn faster than 60 x Hz): when unsure, no field. */
#include "nameplate.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pcre2.h>

#define TEXT_MAX (64 * 1024) /* bytes of OCR text looked at */
#define LINES_MAX 4096
#define TOKENS_MAX 16384
#define MODEL_MAX 40   /* longest model or serial kept */
#define NAME_WORDS 6   /* words of a manufacturer read as text */
#define NO_WORDS 0.9f  /* word confidence when the engine gave none */
#define FIT_FUZZY 0.8f /* a label read with OCR confusions */
#define FIT_NEXT 0.9f  /* the value on the line after its label */
#define FIT_NUM 0.9f   /* a number read with O for 0 or l for 1 */
#define FIT_TABLE 0.75f
#define FIT_SHAPE 0.6f /* a value recognised only by its shape */

/* Pseudo-fields of labels: volts-phase-hertz in one ("V-PH-HZ"), labels
 * whose numbers must not be taken for a field ("MCA", "LRA", "DESIGN"), and
 * words that qualify a label without being a value ("AC", "INPUT"). */
enum { F_VPH = NP_FIELD_COUNT, F_IGNORE, F_QUAL };

#define L_AFTER 1u  /* the value follows: "VOLTS 460" */
#define L_BEFORE 2u /* a unit after its value: "460 V" */
#define L_GLUE 4u   /* may be glued to the number: "460V" */
#define L_START 8u  /* a label only at the start of a line: "No. 1234" */
#define L_BOTH (L_AFTER | L_BEFORE | L_GLUE)
#define L_UNIT (L_BEFORE | L_GLUE)

/* A label: its field, how it takes a value, the fit of a value after it
 * (rank) and before it (ufit). re is a regex where spaces stand for any
 * separator and capital letters may be read with their OCR confusions;
 * lower case letters and classes are matched as written (case-insensitive). */
struct label {
    short field;
    unsigned char flags;
    float rank, ufit;
    const char *re;
};

/* Accented letters, upper or lower case, or the plain letter OCR often
 * reads instead. */
#define E_ "(?:e|\\xC3[\\xA8-\\xAB\\x88-\\x8B])"
#define A_ "(?:a|\\xC3[\\xA0-\\xA5\\x80-\\x85])"
#define O_ "(?:o|\\xC3[\\xB2-\\xB6\\x92-\\x96])"
#define U_ "(?:u|\\xC3[\\xB9-\\xBC\\x99-\\x9C])"
#define I_ "(?:i|\\xC3[\\xAC-\\xAF\\x8C-\\x8F])"
#define C_ "(?:c|g|\\xC3[\\xA7\\x87])" /* OCR reads a cedilla as g */
#define N_ "(?:n|\\xC3[\\xB1\\x91])"
#define AE_ "(?:ae|a|\\xC3[\\xA4\\x84])"
#define OE_ "(?:oe|o|\\xC3[\\xB6\\x96])"
#define SS_ "(?:ss|\\xC3\\x9F)"
#define DEG_ "(?:\\xC2[\\xB0\\xBA]|\\xE2\\x84\\x96)" /* the o of N°, Nº, № */
#define NO_ "(?:N[O0]\\.?|NR\\.?|N" DEG_ "|#|NUMBER)"

/* Order matters where two labels start alike: the first alternative that
 * ends on a word boundary wins, so longer labels come first. */
static const struct label labels[] = {
    /* An HVAC unit's minimum circuit ampacity: its amps when nothing better
     * (a fan's FLA) is printed. */
    {NP_AMPS, L_AFTER, 0.5f, 0, "MIN(?:IMUM|\\.)? C(?:IRCUIT|KT|IR)\\.? AMP(?:S|ACITY|ERES|\\.)?"},
    {NP_AMPS, L_AFTER, 0.5f, 0, "M\\.?C\\.?A\\.?"},
    /* Numbers that belong to something else. */
    {F_IGNORE, L_AFTER, 1, 0,
     "MAX(?:IMUM|\\.)? (?:OVER ?CURRENT|FUSE|CKT\\.? BKR|BREAKER|O\\.?C\\.?P\\.?)(?: "
     "PROT(?:ECTIVE|ECTION|\\.)?)?(?: DEVICE)?(?: AMP(?:S|ERES)?)?"},
    {F_IGNORE, L_AFTER, 1, 0, "USABLE AT(?: [0-9]{3} ?V(?:OLTS)?)?"},
    {F_IGNORE, L_AFTER, 1, 0,
     "(?:H|Q|P MAX|T MAX|PN|IMP\\.? DIA\\.?|SIZE|HEAD|FLOW)(?=[ ]?:)"}, /* pump */
    {F_IGNORE, L_AFTER, 1, 0, "M\\.?O\\.?C\\.?P\\.?"},
    {F_IGNORE, L_AFTER, 1, 0, "MOP"},
    {F_IGNORE, L_AFTER, 1, 0, "L\\.?R\\.?A\\.?"},
    {F_IGNORE, L_AFTER, 1, 0, "R\\.?L\\.?A\\.?"},
    {F_IGNORE, L_AFTER, 1, 0, "LOCKED ROTOR AMP(?:S|ERES)?"},
    {F_IGNORE, L_AFTER, 1, 0, "SCCR"},
    {F_IGNORE, L_AFTER, 1, 0, "K\\.?V\\.?A\\.? CODE"},
    {F_IGNORE, L_AFTER, 1, 0, "CODE(?: LETTER)?"},
    {F_IGNORE, L_AFTER, 1, 0, "(?:NEMA )?DESIGN(?: LETTER| PRESSURE)?"},
    {F_IGNORE, L_AFTER, 1, 0, "TYPE OF DUTY"},
    {F_IGNORE, L_AFTER, 1, 0, "DUTY(?: TYPE| CYCLE)?"},
    {F_IGNORE, L_AFTER, 1, 0, "BETRIEBSART"},
    {F_IGNORE, L_AFTER, 1, 0, "(?:MAX(?:IMUM|\\.)? )?AMB(?:IENT|\\.)?(?: TEMP(?:ERATURE|\\.)?)?"},
    {F_IGNORE, L_AFTER, 1, 0, "COS(?: |\\.)?(?:PHI|\\xCF\\x86|\\xCE\\xA6|\\xCF\\x95)"},
    {F_IGNORE, L_AFTER, 1, 0, "P\\.F\\.|PF"},
    {F_IGNORE, L_AFTER, 1, 0, "WEIGHT|WT\\."},
    {F_IGNORE, L_AFTER, 1, 0, "(?:(?:O\\.?D\\.?E|D\\.?E|N\\.?D\\.?E)\\.? )?(?:BRG|BEARING)S?\\.?"},
    {F_IGNORE, L_AFTER, 1, 0, "SPEC(?:IFICATION|\\.)?(?: N[O0]\\.?)?"},
    {F_IGNORE, L_AFTER, 1, 0, "(?:RMS )?SYMMETRICAL(?: AMPERES| AMPS| VOLTAGE| VOLTS)?"},
    {F_IGNORE, L_AFTER, 1, 0,
     "(?:MAX(?:IMUM|\\.)? )?(?:WORKING |TEST |STEAM |WATER )?PRESS(?:URE|\\.)"},
    {F_IGNORE, L_AFTER, 1, 0,
     "(?:MAX(?:IMUM|\\.)? )?(?:WATER |OUTLET AIR |AIR )?TEMP(?:ERATURE|\\.)?(?: RISE)?"},
    /* test pressures, the number before or after: "450 HIGH SIDE", "LOW SIDE 250" */
    {F_IGNORE, L_AFTER | L_BEFORE, 1, 0, "(?:LOW|HIGH) SIDE"},
    {F_IGNORE, L_AFTER, 1, 0, "REFRIGERANT|RISE|SHAFT|ALTITUDE|CONN(?:ECTION|\\.)"},
    {F_IGNORE, L_AFTER, 1, 0,
     "(?:UL |JOB |DRAWING |DWG\\.? |CERT(?:IFICATE|\\.)? |PATENT |PAT\\.? |FILE )N[O0]\\.?"},
    {NP_PHASE, L_UNIT, 1, 0.9f, "(?<=[0-9])AC"}, /* "3AC 400V" */
    /* Qualifiers: skipped between a label and its value. */
    {F_QUAL, 0, 1, 0, "A\\.C\\.|AC|D\\.C\\.|DC"}, /* also glued: "AC380-480V" */
    {F_QUAL, 0, 1, 0, "INPUT|OUTPUT|EINGANG|AUSGANG|ENTRADA|SALIDA|SA" I_ "DA|ENTR" E_ "E|SORTIE"},
    {F_QUAL, 0, 1, 0, "RATED|F\\.L\\.(?! ?A)"},
    /* Year or date code; before the manufacturer's "MFR." and "MFG". */
    {NP_YEAR, L_AFTER, 1, 0, "(?:MFG|MFD|MFR)\\.? (?:DATE|YEAR)"},
    {NP_YEAR, L_AFTER, 1, 0, "MANUFACTUR(?:ING|ED) DATE"},
    {NP_YEAR, L_AFTER, 1, 0, "YEAR(?: OF (?:MFG\\.?|MANUF(?:ACTURE|\\.)?))?"},
    {NP_YEAR, L_AFTER, 1, 0, "DATE(?: OF (?:MFG\\.?|MANUF(?:ACTURE|\\.)?)| CODE| DE FABRICATION)?"},
    {NP_YEAR, L_AFTER, 0.9f, 0, "YR\\.?"},
    {NP_YEAR, L_AFTER, 1, 0, "BAUJAHR|HERSTELLDATUM|FABR(?:IKATIONS|\\.)? ?JAHR"},
    {NP_YEAR, L_AFTER, 0.9f, 0, "BJ\\.?"},
    {NP_YEAR, L_AFTER, 1, 0, "A" N_ "O(?: DE FABRICACI" O_ "N)?"},
    {NP_YEAR, L_AFTER, 1, 0, "ANN" E_ "E(?: DE FABRICATION)?"},
    {NP_YEAR, L_AFTER, 1, 0, "FECHA(?: DE FABRICACI" O_ "N)?"},
    {NP_YEAR, L_AFTER, 1, 0, "DATA DE FABRICA" C_ A_ "O"},
    {NP_YEAR, L_AFTER, 0.9f, 0, "DATA(?=[ :]{0,3}[0-9]{1,2}[/.\\-][0-9]{2,4})"}, /* a date only */
    /* Volts, phase and hertz in one label: "VOLTS-PH-HZ 208/230-1-60". */
    {F_VPH, L_AFTER, 1, 0,
     "V(?:OLTS?|OLTAGE)?[ ]?[-/][ ]?PH(?:ASE)?[ ]?[-/][ ]?(?:HZ|HERTZ|CY(?:CLES?)?)"},
    /* Manufacturer. */
    {NP_MANUFACTURER, L_AFTER, 1, 0, "MANUFACTURED (?:BY|FOR)|MANUFACTURER"},
    {NP_MANUFACTURER, L_AFTER, 1, 0, "(?:MFD|MFG)\\.? BY|MADE BY|PRODUCED BY"},
    {NP_MANUFACTURER, L_AFTER, 0.9f, 0, "MFR\\.?"},
    {NP_MANUFACTURER, L_AFTER, 1, 0, "HERSTELLER|FABRICANTE|FABRICANT|FABRICADO POR"},
    {NP_MANUFACTURER, L_AFTER, 1, 0, "FABRIQU" E_ E_ "? PAR"},
    /* Model, type, catalogue number. */
    {NP_MODEL, L_AFTER, 1, 0, "MOD(?:ELL|ELE|ELO|EL|" E_ "LE)?\\.?(?: " NO_ ")?"},
    {NP_MODEL, L_AFTER, 1, 0, "M/N"},
    {NP_MODEL, L_AFTER, 0.85f, 0, "CAT(?:ALOG(?:UE)?)?\\.?(?: (?:N[O0]\\.?|NUMBER|#))?"},
    {NP_MODEL, L_AFTER, 0.9f, 0, "TYPE(?: NO\\.?)?|TYP\\.?|TIPO|MLFB|T/C"},
    {NP_MODEL, L_AFTER, 0.85f, 0, "(?:BESTELL|BEST\\.|ORDER) (?:NR\\.?|N[O0]\\.?|CODE|NUMBER)"},
    {NP_MODEL, L_AFTER, 0.85f, 0, "(?:ART(?:IKEL)?\\.?|PART|PRODUCT) " NO_},
    {NP_MODEL, L_AFTER, 0.85f, 0, "P/N|R" E_ "F(?:" E_ "RENCE|\\.)?(?: " NO_ ")?"},
    {NP_MODEL, L_AFTER, 0.85f, 0, "MOT\\."}, /* "3~Mot. 1LE1001-1DB23-4AA4" */
    /* Serial number. */
    {NP_SERIAL, L_AFTER, 1, 0, "SERIAL(?: " NO_ ")?"},
    {NP_SERIAL, L_AFTER, 1, 0, "SER\\.?(?: (?:N[O0]\\.?|NR\\.?|#))?"},
    {NP_SERIAL, L_AFTER, 1, 0, "[S5]/N|S\\.N\\.|SN"},
    {NP_SERIAL, L_AFTER, 1, 0, "SERIEN(?:NUMMER| NR\\.?)"},
    {NP_SERIAL, L_AFTER, 1, 0, "FABR(?:IKATIONS|IK|\\.)? NR\\.?"},
    {NP_SERIAL, L_AFTER, 1, 0, "N(?:" U_ "M" E_ "RO|" DEG_ "|[O0]\\.?)? DE S" E_ "RIE"},
    {NP_SERIAL, L_AFTER, 1, 0, "N" DEG_ " S" E_ "RIE|S" E_ "RIE"},
    {NP_SERIAL, L_AFTER | L_START, 0.8f, 0, "N(?:R\\.?|[O0]\\.|" DEG_ ")"},
    {NP_SERIAL, L_AFTER | L_START, 0.7f, 0, "N[2O](?= ?:)"}, /* N° as OCR reads it: "N2:" */
    /* Ratings. */
    {NP_VOLTS, L_BOTH, 1, 0.9f, "VOLT(?:S|AGE|AJE|AGEM|IOS)?"},
    {NP_VOLTS, L_AFTER, 1, 0, "TENSI" O_ "N|TENS" A_ "O|SPANNUNG"},
    {NP_VOLTS, L_UNIT | L_AFTER, 0.6f, 0.7f, "VAC|VDC|V\\.?"},
    {NP_AMPS, L_BOTH, 1, 0.9f, "F\\.?L\\.? ?A(?:MPS?)?\\.?|FULL LOAD AMP(?:S|ERES)?"},
    {NP_AMPS, L_BOTH, 1, 0.9f, "AMP(?:S|ERES|" E_ "RES|ERAGE|ERAJE|ERIOS|\\.)?"},
    {NP_AMPS, L_AFTER, 1, 0,
     "(?:RATED )?CURRENT|CORRIENTE(?: NOMINAL)?|CORRENTE(?: NOMINAL)?|COURANT|STROM"},
    {NP_AMPS, L_AFTER, 1, 0, "INTENSIT" E_ "|INTENSIDADE?"},
    {NP_AMPS, L_UNIT | L_AFTER, 0.6f, 0.6f, "A\\.?"},
    {NP_HP, L_BOTH, 1, 0.9f, "H[ .]?P\\.?|HORSE ?POWER"},
    {NP_HP, L_BOTH, 0.9f, 0.85f, "C\\.?V\\.?"},
    {NP_KW, L_BOTH, 1, 0.9f, "K[ .]?W\\.?|KILOWATTS?"},
    {NP_KW, L_AFTER, 0.9f, 0, "LEISTUNG|POTENCIA|POT" E_ "NCIA|PUISSANCE"},
    {NP_RPM, L_BOTH, 1, 0.9f, "R\\.?P\\.?M\\.?|REV(?:S|OLUTIONS)?/MIN|(?:TR|U|R)/MIN"},
    {NP_RPM, L_UNIT, 1, 0.9f, "[1L]/MIN|MIN ?-1|MIN\\xE2\\x81\\xBB\\xC2\\xB9|MIN\\xC2\\xB9"},
    {NP_RPM, L_AFTER, 0.9f, 0, "SPEED|DREHZAHL|VELOCIDAD|ROTA" C_ A_ "O|VITESSE"},
    {NP_RPM, L_AFTER, 0.8f, 0, "N(?=[ ]?:)"}, /* the IEC symbols: "n: 2910", "I: 26,7" */
    {NP_AMPS, L_AFTER, 0.8f, 0, "I(?=[ ]?:)"},
    {NP_HZ, L_BOTH, 1, 0.9f, "H\\.?Z\\.?|HERTZ|CYC(?:LES?|\\.)?|C/S"},
    {NP_HZ, L_AFTER, 1, 0, "FREQ(?:UENCY|\\.)?|FRECUENCIA|FREQU" E_ "NCIA|FR" E_ "QUENCE|FREQUENZ"},
    {NP_PHASE, L_BOTH, 1, 0.9f, "PH(?:ASES?|ASEN|\\.)?|FASES?"},
    {NP_PHASE, L_UNIT, 1, 0.8f, "~|X(?=[0-9]{3})"}, /* "3~", "3x400V" */
    {NP_FRAME, L_AFTER, 1, 0,
     "FRAME(?: SIZE)?|BAUGR(?:" OE_ "|..?)(?:" SS_ "|B)E|CARCASA|CARCA" C_
     "A|CARCASSE|TAILLE|TAMA(?:" N_ "|NH)O|BG"},
    {NP_FRAME, L_AFTER, 0.9f, 0, "FR\\.?"},
    {NP_ENCLOSURE, L_AFTER, 1, 0, "ENCL(?:OSURE|\\.)?(?: TYPE)?|SCHUTZART"},
    {NP_ENCLOSURE, L_AFTER, 1, 0,
     "(?:GRADO DE )?PROTECCI" O_ "N|(?:GRAU DE )?PROTE" C_ A_ "O|(?:INDICE DE |DEGREE OF |DEG\\.? "
     "OF )?PROT(?:ECTION|\\.)"},
    {NP_SERVICE_FACTOR, L_BOTH, 1, 0.85f, "[S5]\\.?F\\.?|SERV(?:ICE|\\.)? F(?:ACTOR|ACT\\.?|\\.)?"},
    {NP_SERVICE_FACTOR, L_AFTER, 1, 0,
     "FACTOR DE SERVICIO|FATOR DE SERVI" C_ "O|FACTEUR DE SERVICE|BETRIEBSFAKTOR"},
    {NP_SERVICE_FACTOR, L_AFTER, 0.9f, 0, "F\\.?S\\.?"},
    {NP_INSULATION, L_AFTER, 1, 0, "INS(?:UL(?:ATION)?|UL\\.|\\.)? CL(?:ASS|\\.)?"},
    {NP_INSULATION, L_AFTER, 1, 0, "CL(?:ASS|\\.)? (?:INS(?:UL(?:ATION)?)?|ISOL|AISL)\\.?"},
    {NP_INSULATION, L_AFTER, 1, 0, "ISOL(?:ATION|IERSTOFF|\\.)? ?KL(?:ASSE|\\.)?|ISO\\.? KL\\.?"},
    {NP_INSULATION, L_AFTER, 1, 0, "ISOL(?:ATION|\\.)? CL(?:ASS|ASSE|\\.)?"},
    {NP_INSULATION, L_AFTER, 1, 0, "W(?:" AE_ "|..?)RME ?KL(?:ASSE|\\.)?|TH\\.? ?(?:CL|KL)\\.?"},
    {NP_INSULATION, L_AFTER, 1, 0,
     "CLASE DE AISLAMIENTO|AISLAMIENTO|CLASSE D.ISOLATION|CLASSE DE ISOLAMENTO|ISOLAMENTO"},
    {NP_INSULATION, L_AFTER, 0.9f, 0, "INSULATION|INSUL\\.?|INS\\.?|ISOLATION|ISOL\\.|AISL\\.?"},
    {NP_INSULATION, L_AFTER, 0.7f, 0, "CLASSE?|CL\\."},
    {NP_EFFICIENCY, L_AFTER, 1, 0, "(?:NEMA )?NOM(?:INAL|\\.)? EFF(?:ICIENCY|\\.)?"},
    {NP_EFFICIENCY, L_AFTER, 0.8f, 0,
     "(?:GUAR(?:ANTEED|\\.)?|MIN(?:IMUM|\\.)?) EFF(?:ICIENCY|\\.)?"},
    {NP_EFFICIENCY, L_AFTER, 1, 0, "(?:NEMA )?EFF(?:ICIENCY|\\.)?|\\xCE\\xB7"},
    {NP_EFFICIENCY, L_AFTER, 1, 0, "WIRKUNGSGRAD|RENDIMIENTO|RENDIMENTO|RENDEMENT"},
    {NP_EFFICIENCY, L_AFTER, 0.9f, 0, "REND\\.?"},
    {NP_EFFICIENCY, L_AFTER, 0.95f, 0, "[I1L]E[1-5]"},
};
#define N_LABELS (sizeof(labels) / sizeof(labels[0]))

/* ---- manufacturers ---- */

#define A_NOSCAN 1u /* only for np_manufacturer_canonical, not looked for in text */
#define A_WEAK 2u   /* also a common word or place: needs a company line or a line to itself */
#define A_CS 4u     /* short: looked for exactly as written, and as a logo or with a company word */

static const struct alias {
    const char *alias, *name;
    unsigned char flags;
} aliases[] = {
    {"Allen-Bradley", "Allen-Bradley", 0},
    {"A-B", "Allen-Bradley", A_NOSCAN},
    {"Rockwell Automation", "Allen-Bradley", 0},
    {"Rockwell", "Allen-Bradley", A_WEAK},
    {"Siemens", "Siemens", 0},
    {"ABB", "ABB", A_CS},
    {"Asea Brown Boveri", "ABB", 0},
    {"Schneider Electric", "Schneider Electric", 0},
    {"Schneider", "Schneider Electric", 0},
    {"Square D", "Schneider Electric", 0},
    {"Telemecanique", "Schneider Electric", 0},
    {"T\xc3\xa9l\xc3\xa9m\xc3\xa9"
     "canique",
     "Schneider Electric", A_NOSCAN},
    {"WEG", "WEG", A_CS},
    {"Baldor-Reliance", "Baldor-Reliance", 0},
    {"Baldor", "Baldor-Reliance", 0},
    {"Reliance Electric", "Baldor-Reliance", 0},
    {"Reliance", "Baldor-Reliance", A_WEAK},
    {"Leeson", "Leeson", 0},
    /* Marathon and Regal are one maker; the name the plates print, as the
     * fixtures' ground truth has it (tests/fixtures/nameplates) */
    {"Marathon Electric", "Marathon", 0},
    {"Marathon", "Marathon", A_WEAK},
    {"Regal Rexnord", "Marathon", 0},
    {"Regal Beloit", "Marathon", 0},
    {"Regal", "Marathon", A_WEAK},
    {"Eaton", "Eaton", 0},
    {"Cutler-Hammer", "Eaton", 0},
    {"General Electric", "GE", 0},
    {"GE", "GE", A_CS | A_WEAK},
    {"Mitsubishi Heavy Industries", "Mitsubishi Heavy Industries", 0},
    {"Mitsubishi Electric", "Mitsubishi Electric", 0},
    {"Mitsubishi", "Mitsubishi Electric", 0},
    {"Yaskawa", "Yaskawa", 0},
    {"Danfoss", "Danfoss", 0},
    {"SEW-Eurodrive", "SEW-Eurodrive", 0},
    {"Eurodrive", "SEW-Eurodrive", 0},
    {"SEW", "SEW-Eurodrive", A_CS | A_WEAK},
    {"Getriebebau Nord", "Nord", 0},
    {"Nord Drivesystems", "Nord", 0},
    {"NORD", "Nord", A_CS | A_WEAK},
    {"Toshiba", "Toshiba", 0},
    {"Hitachi", "Hitachi", 0},
    {"Fanuc", "Fanuc", 0},
    {"Omron", "Omron", 0},
    {"Lenze", "Lenze", 0},
    {"Grundfos", "Grundfos", 0},
    {"Carrier", "Carrier", 0},
    {"Trane", "Trane", 0},
    {"Lennox", "Lennox", 0},
    {"Emerson", "Emerson", 0},
    {"US Motors", "Emerson", 0},
    {"Nidec Motor", "Emerson", 0},
    {"U.S. Motors", "Emerson", 0},
    {"Nidec", "Emerson", A_WEAK},
    {"Lincoln Electric", "Lincoln Electric", 0},
    {"Lincoln Motors", "Lincoln Electric", 0},
    {"Lincoln", "Lincoln Electric", A_WEAK},
    {"Teco-Westinghouse", "Teco-Westinghouse", 0},
    {"TECO", "Teco-Westinghouse", A_CS | A_WEAK},
    {"Brook Crompton", "Brook Crompton", 0},
    {"Bosch Rexroth", "Bosch Rexroth", 0},
    {"Rexroth", "Bosch Rexroth", 0},
    {"Indramat", "Bosch Rexroth", 0},
    {"Parker Hannifin", "Parker", 0},
    {"Parker", "Parker", A_WEAK},
    {"KSB", "KSB", A_CS},
    {"Xylem", "Xylem", 0},
    {"Goulds Pumps", "Goulds", 0},
    {"Goulds", "Goulds", 0},
    {"Flygt", "Flygt", 0},
    {"Lowara", "Lowara", 0},
    {"Bell & Gossett", "Bell & Gossett", 0},
    {"Wilo", "Wilo", 0},
    {"Pentair", "Pentair", 0},
    {"Sta-Rite", "Pentair", 0},
    {"Daikin", "Daikin", 0},
    {"McQuay", "Daikin", 0},
    {"Johnson Controls", "York", 0},
    {"York International", "York", 0},
    {"YORK", "York", A_CS | A_WEAK},
    {"Rheem", "Rheem", 0},
    {"Ruud", "Ruud", 0},
    {"Goodman", "Goodman", 0},
    {"Amana", "Amana", 0},
    {"Hyundai", "Hyundai", 0},
    {"Hoyer", "Hoyer", 0},
    {"Marelli", "Marelli", 0},
    {"Leroy-Somer", "Leroy-Somer", 0},
    {"Vacon", "Vacon", 0},
    {"Delta Electronics", "Delta", 0},
    {"DELTA", "Delta", A_CS | A_WEAK},
    {"Invertek", "Invertek", 0},
    {"Allied Motion", "Allied Motion", 0},
    {"United Electric Controls", "United Electric Controls", 0},
    {"United Electric Company", "United Electric Company", 0},
    {"United Electric", "United Electric Company", 0},
    {"Franklin Electric", "Franklin Electric", 0},
    {"A.O. Smith", "A.O. Smith", 0},
    {"Century", "Century", A_WEAK},
    {"Magnetek", "Magnetek", 0},
    {"Dayton", "Dayton", A_WEAK},
    {"Kollmorgen", "Kollmorgen", 0},
    {"Bonfiglioli", "Bonfiglioli", 0},
    {"Sumitomo", "Sumitomo", 0},
    {"Lafert", "Lafert", 0},
    {"VEM", "VEM", A_CS | A_WEAK},
    {"Fuji Electric", "Fuji Electric", 0},
    {"Control Techniques", "Control Techniques", 0},
    {"Benshaw", "Benshaw", 0},
    {"Bryant", "Bryant", A_WEAK},
    {"American Standard", "Trane", 0},
    {"Heatcraft", "Heatcraft", 0},
    {"Copeland", "Copeland", 0},
    {"Tecumseh", "Tecumseh", 0},
    {"Bitzer", "Bitzer", 0},
    {"Fujitsu", "Fujitsu", 0},
    {"Samsung", "Samsung", 0},
    {"LG", "LG", A_CS | A_WEAK},
    {"Modine", "Modine", 0},
    {"Reznor", "Reznor", 0},
    {"Weil-McLain", "Weil-McLain", 0},
    {"Lochinvar", "Lochinvar", 0},
    {"Armstrong", "Armstrong", A_WEAK},
    {"Taco", "Taco", A_WEAK},
    {"Ebara", "Ebara", 0},
    {"Calpeda", "Calpeda", 0},
    {"Pedrollo", "Pedrollo", 0},
    {"Zoeller", "Zoeller", 0},
    {"Greenheck", "Greenheck", 0},
    {"Gorman-Rupp", "Gorman-Rupp", 0},
    {"Fairbanks Morse", "Fairbanks Morse", 0},
    {"Aurora Pump", "Aurora Pump", 0},
};
#define N_ALIASES (sizeof(aliases) / sizeof(aliases[0]))

/* ---- compiled patterns ---- */

/* Compiled once, shared read-only by every thread; static storage keeps
 * them reachable for the process's life. */
static struct {
    pcre2_code *label[2]; /* exact, with OCR confusions */
    pcre2_code *alias[3]; /* exact, with OCR confusions, behind a logo's glyph */
    pcre2_code *num, *foreign, *model, *model_series, *model_line, *frame, *encl, *encl_bare, *sf,
        *ins, *eff, *year, *phase, *vph, *vph_bare, *company, *company_electric, *after_brand,
        *stopword, *tag_before, *tag_after, *parent;
    pcre2_match_context *mctx;
    uint32_t ovec; /* the most capture pairs any pattern needs */
    bool ok;
} re;
static pthread_once_t re_once = PTHREAD_ONCE_INIT;

/* A number as OCR reads it: digits with O for 0 (and a leading l or I for
 * 1), a decimal point or comma, lists and ranges "208-230/460", "230V/460". */
#define DIGITS "(?:[0-9]|(?-i:[lI])(?=[0-9]))(?-i:[0-9Oo])*"
#define NUMBER DIGITS "(?:[.,](?-i:[0-9Oo])+)?"
static const char re_num[] = NUMBER "(?: ?(?:V|A)? ?[-/] ?" NUMBER ")*";

/* Units Rivet does not read: a number followed by one is not a rating. */
static const char re_foreign[] =
    "(?:BTU(?:/?HR?)?|BTUH|MBH|MBTU|PSI[GA]?|KPA|MPA|BAR|LBS?|KG|OZ|GAL|" DEG_
    " ?[CF]?|DEG\\.?|[CFGKLMSHW]|KVA|VA|KVAR|KWH|CFM|GPM|LPM|L/MIN|M3/H|M\\xC2\\xB3/H|FT|MM|CM|"
    "IN(?:CH(?:ES)?)?|PO|AWG|MFD|UF|\\xC2\\xB5F|NM|DBA?|KA|MA|KV|MV|SEC|MS|HRS?|TONS?|"
    "MIN(?:IMUM|\\.)?|MAX(?:IMUM|\\.)?|AMB|RISE|%)(?:(?<![A-Z0-9])|(?![A-Z0-9]))";

/* A model or serial as printed: letters, digits, inner - / . and a dash
 * OCR spaced out ("38AUZA12A0A6 - 0B0C0"). */
static const char re_model[] =
    "[A-Z0-9](?:[A-Z0-9]|[-/.](?=[A-Z0-9])| ?- ?(?=[A-Z0-9])){0,47}"
    "(?=\\s|$|[!-/:-@\\[-`{-~](?![A-Z0-9]))"; /* not cut off: "5819C€27" */
/* A model or serial whose series is a word of its own: "CR 10-3",
 * "UD 1906/1234567". */
static const char re_model_series[] = "[A-Z]{1,4} (?=[0-9])";
static const char re_model_line[] = "[A-Z][A-Z]{4,9} (?=[0-9])"; /* "Etanorm 180-754-746" */
static const char re_frame[] = "(?:IEC |NEMA )?([1-9][0-9]{1,3}(?:[.,][0-9])?[A-Z]{0,5}"
                               "(?:/[A-Z0-9]{1,5})?)(?![A-Z0-9])";
/* IP codes as OCR reads them too: "1P20", "IPSS" */
#define ENCLOSURES                                                                                 \
    "TEFC|TENV|TEAO|TEBC|TEWAC|TEAAC|TEFV|TEXP|XPFC|EXPL|ODP|DPFV|DPSV|(?-i:[I1l])P "              \
    "?[0-6S][0-9SO]"
static const char re_encl[] = "(" ENCLOSURES "|XP|DP|OPEN|WP ?I{1,2}|WP ?[12]|(?:NEMA|TYPE) "
                              "?[0-9]{1,2}[A-Z]?)(?![A-Z0-9])";
static const char re_encl_bare[] = "(?<![A-Z0-9])(" ENCLOSURES ")(?![A-Z0-9])";
static const char re_sf[] = "([12](?:[.,][0-9]{1,2})?)(?![0-9]|[.,][0-9])";
static const char re_ins[] =
    "(?:(?-i:[I1li])?(?-i:([ABEFHNR]))(?![A-Z0-9])|(105|120|130|155|180|200|220)"
    "(?: ?" DEG_ "C?)?(?: ?(?-i:([ABEFH]))(?![A-Z0-9]))?(?![0-9]))";
static const char re_eff[] = "([5-9][0-9](?:[.,][0-9]{1,2})?)(?![0-9]|[.,][0-9])";
static const char re_year[] =
    "((?:19|20)[0-9]{2}[-/.](?:1[0-2]|0?[1-9])(?:[-/.](?:3[01]|[12][0-9]|0?[1-9]))?"
    "|(?:(?:3[01]|[12][0-9]|0?[1-9])[-/.])?(?:1[0-2]|0?[1-9])[-/.](?:19|20)?[0-9]{2}"
    "|[A-Z]{0,2}[0-9]{4,6}[A-Z]?|[A-Z]{1,2}[0-9]{2,3})(?![A-Z0-9]|[-/.][0-9])";
static const char re_phase[] =
    "(?:(SINGLE|MONO(?:F" A_ "SIC[OA]|PHAS" E_ ")?|EINPHASEN|ONE)|(THREE|TRI(?:F" A_
    "SIC[OA]|PHAS" E_ ")?|DREHSTROM|DREIPHASEN|POLY(?:PHASE)?))(?![A-Z])";
static const char re_vph[] = "([0-9]{2,3}(?:[-/][0-9]{2,3})?) *[-/ ] *([13]) *[-/ ] *(50|60)"
                             "(?![0-9])";
static const char re_vph_bare[] = "(?<![0-9A-Z/.-])([0-9]{3}(?:/[0-9]{3})?)-([13])-(50|60)"
                                  "(?![0-9A-Z])";
/* A company line: up to four capitalised words before a company suffix.
 * Matched case-sensitively, so prose ("the company") does not count. */
#define CWORD "(?:[A-Z]|\\xC3[\\x80-\\x9E])(?:[A-Za-z'&-]|\\xC3[\\x80-\\xBF])*"
static const char re_company[] =
    "(?<![A-Za-z0-9\\x80-\\xFF])((?:(?:" CWORD "|&)\\.? ){0,3}" CWORD "\\.?,? "
    "(?:INC|Inc|INCORPORATED|Incorporated|CORP|Corp|CORPORATION|Corporation|COMPANY|Company|CO|Co|"
    "GMBH|GmbH|AG|LTD|Ltd|LIMITED|Limited|LLC|L\\.P\\.|LP|S\\.A\\.|SA|S\\.P\\.A\\.|"
    "S\\.p\\.A\\.|SpA|S\\.R\\.L\\.|S\\.r\\.l\\.|B\\.V\\.|N\\.V\\.|OY|Oy|PTY|Pty|PLC|LTDA|Ltda|KG|A/"
    "S)\\.?)"
    "(?![A-Za-z0-9])";
static const char re_company_electric[] =
    "^ *((?:[A-Z][A-Za-z'&-]*\\.? ){1,3}(?:ELECTRIC|Electric)(?: (?:CO|Co|COMPANY|Company|CORP|"
    "Corp|INC|Inc|MFG|Mfg)\\.?)?) *$";
/* What makes a weak brand ("Lincoln", "Delta") a manufacturer. */
static const char re_after_brand[] =
    "[ ,.-]*(?:ELECTRIC|MOTORS?|PUMPS?|DRIVES?|INC|CO|CORP(?:ORATION)?|COMPANY|GMBH|AG|LTD|LLC|"
    "INDUSTRIES|MFG|MANUFACTURING|S\\.?A\\.?)(?![A-Z])";
/* A brand in a tag line, its parent's: "A Member of the ABB Group", "a
 * xylem brand", "by Johnson Controls". */
static const char re_tag_before[] = "(?<![A-Z])(?:A|AN|BY|OF|OF THE|POWERED BY)$";
static const char re_tag_after[] = " *(?:GROUP|BRAND)(?![A-Z])";
/* A parent company: "DIV. OF ACME HOLDINGS LTD". */
static const char re_parent[] = "(?:DIV\\.?|DIVISION|SUBSIDIARY|MEMBER|PART|UNIT) OF ";
/* Words that start a company line without being part of the name. */
static const char re_stopword[] = "(?:A|AN|THE|OF|BY|FOR|AND|DIV\\.?|DIVISION|MFD|MADE|"
                                  "MANUFACTURED|SUBSIDIARY|FABRIQU" E_ "E?|FABRICADO|"
                                  "HERGESTELLT) ";

/* ---- building the patterns ---- */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;

        while (b->len + n + 1 > cap)
            cap *= 2;
        p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* The letters OCR reads for a capital letter of a label. */
static const char *confusion(char c)
{
    switch (c) {
    case 'O':
        return "[O0Q]";
    case 'I':
        return "[I1L!]";
    case 'L':
        return "[L1I]";
    case 'S':
        return "[S5$]";
    case 'B':
        return "[B8]";
    case 'M':
        return "[MN]";
    case 'G':
        return "[G6]";
    case 'Z':
        return "[Z2]";
    default:
        return NULL;
    }
}

/* Appends one alternative of a label's regex (see sb_spec). */
static void sb_alt(struct sbuf *b, const char *s, const char *e, bool fuzzy)
{
    size_t letters = 0;

    for (const char *p = s; p < e; p++)
        if (*p >= 'A' && *p <= 'Z')
            letters++;
    while (s < e) {
        const char *cf;

        if (*s == '\\') {
            size_t n = s[1] == 'x' ? 4 : 2;

            n = n < (size_t)(e - s) ? n : (size_t)(e - s);
            sb_put(b, s, n);
            s += n;
        } else if (*s == '[') {
            const char *q = s + 1;

            while (q < e && *q != ']')
                q += (*q == '\\' && q + 1 < e) ? 2 : 1;
            if (q < e)
                q++;
            sb_put(b, s, (size_t)(q - s));
            s = q;
        } else if (*s == ' ') {
            sb_puts(b, fuzzy ? "[ .\\-_,:]{0,3}" : "[ .\\-_]{0,2}");
            s++;
        } else if (fuzzy && letters >= 3 && (cf = confusion(*s))) {
            sb_puts(b, cf);
            s++;
        } else {
            sb_put(b, s, 1);
            s++;
        }
    }
}

/* Appends a label's regex: a space becomes any separator; when fuzzy, the
 * capital letters of an alternative of three letters or more also match
 * their OCR confusions ("5ER. N0.", "V0LTS", "RPN"); shorter ones stay
 * exact, or "86" would read as "BG". */
static void sb_spec(struct sbuf *b, const char *spec, bool fuzzy)
{
    const char *s = spec, *alt = spec;
    int depth = 0;

    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
        } else if (*s == '[') {
            while (s[1] && s[1] != ']')
                s += (s[1] == '\\' && s[2]) ? 2 : 1;
        } else if (*s == '(') {
            depth++;
        } else if (*s == ')') {
            depth--;
        } else if (*s == '|' && depth == 0) {
            sb_alt(b, alt, s, fuzzy);
            sb_puts(b, "|");
            alt = s + 1;
        }
    }
    sb_alt(b, alt, s, fuzzy);
}

/* Appends a manufacturer name as a regex: spaces, dots and dashes between
 * words are optional; "&" may be "AND". */
static void sb_alias(struct sbuf *b, const char *name, bool fuzzy)
{
    size_t letters = 0;
    bool sep = false;

    for (const char *s = name; *s; s++)
        if (isalpha((unsigned char)*s))
            letters++;
    for (const char *s = name; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        const char *cf;
        char up;

        if (ch == ' ' || ch == '-' || ch == '.') {
            if (!sep)
                sb_puts(b, "[ .\\-]{0,2}");
            sep = true;
            continue;
        }
        sep = false;
        if (ch == '&') {
            sb_puts(b, "(?:&|AND)");
            continue;
        }
        if (!isalnum(ch))
            continue;
        up = (char)toupper(ch);
        if (fuzzy && letters >= 5 && (cf = confusion(up)))
            sb_puts(b, cf);
        else
            sb_put(b, &up, 1);
    }
}

static pcre2_code *compile(const char *pattern, uint32_t opts)
{
    pcre2_code *code;
    PCRE2_SIZE erroff;
    int err;
    uint32_t n = 0;

    code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &err, &erroff, NULL);
    if (!code)
        return NULL;
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* an optimisation: fine if unavailable */
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &n);
    if (n + 1 > re.ovec)
        re.ovec = n + 1;
    return code;
}

static size_t alias_order[N_ALIASES];

/* Longer names first, so "Baldor-Reliance" is not read as "Baldor". */
static int alias_cmp(const void *a, const void *b)
{
    size_t la = strlen(aliases[*(const size_t *)a].alias);
    size_t lb = strlen(aliases[*(const size_t *)b].alias);

    return la < lb ? 1 : la > lb ? -1 : 0;
}

static pcre2_code *compile_labels(bool fuzzy)
{
    struct sbuf b = {0};
    pcre2_code *code = NULL;
    char mark[32];

    sb_puts(&b, "(?:");
    for (size_t i = 0; i < N_LABELS; i++) {
        snprintf(mark, sizeof(mark), "%s(*MARK:%zu)(?:", i ? "|" : "", i);
        sb_puts(&b, mark);
        sb_spec(&b, labels[i].re, fuzzy);
        sb_puts(&b, ")");
    }
    /* a label ends at a word boundary, or on a dot or a sign; AC, DC and
     * the x of "3x400V" may be glued to the number that follows; a label
     * joined by a dash to what follows is part of a code ("FR-E740") */
    sb_puts(&b, ")(?:(?<![A-Z0-9])|(?![A-Z0-9])|(?<=AC|DC|X)(?=[0-9]))(?!-[A-Z0-9])");
    if (!b.oom)
        code = compile(b.p, PCRE2_CASELESS);
    free(b.p);
    return code;
}

/* The alias pattern: mode 0 exact, 1 with OCR confusions, 2 behind one
 * letter that is a logo's emblem read as text ("© ODAIKIN"). */
static pcre2_code *compile_aliases(int mode)
{
    struct sbuf b = {0};
    pcre2_code *code = NULL;
    char mark[32];
    bool first = true, fuzzy = mode == 1;

    sb_puts(&b, mode == 2 ? "(?<![A-Z0-9])[A-Z](?:" : "(?<![A-Z0-9])(?:");
    for (size_t k = 0; k < N_ALIASES; k++) {
        size_t i = alias_order[k];
        unsigned fl = aliases[i].flags;

        if ((fl & A_NOSCAN) || (mode && (fl & (A_CS | A_WEAK))) ||
            (mode == 2 && strlen(aliases[i].alias) < 5))
            continue;
        snprintf(mark, sizeof(mark), "%s(*MARK:%zu)", first ? "" : "|", i);
        sb_puts(&b, mark);
        sb_puts(&b, (fl & A_CS) ? "(?-i:" : "(?:");
        sb_alias(&b, aliases[i].alias, fuzzy);
        sb_puts(&b, ")");
        first = false;
    }
    sb_puts(&b, ")(?![A-Z0-9])");
    if (!b.oom)
        code = compile(b.p, PCRE2_CASELESS);
    free(b.p);
    return code;
}

static void re_init(void)
{
    const uint32_t ci = PCRE2_CASELESS;

    for (size_t i = 0; i < N_ALIASES; i++)
        alias_order[i] = i;
    qsort(alias_order, N_ALIASES, sizeof(alias_order[0]), alias_cmp);
    re.label[0] = compile_labels(false);
    re.label[1] = compile_labels(true);
    for (int m = 0; m < 3; m++)
        re.alias[m] = compile_aliases(m);
    re.num = compile(re_num, ci);
    re.foreign = compile(re_foreign, ci);
    re.model = compile(re_model, ci);
    re.model_series = compile(re_model_series, ci);
    re.model_line = compile(re_model_line, ci);
    re.frame = compile(re_frame, ci);
    re.encl = compile(re_encl, ci);
    re.encl_bare = compile(re_encl_bare, ci);
    re.sf = compile(re_sf, ci);
    re.ins = compile(re_ins, ci);
    re.eff = compile(re_eff, ci);
    re.year = compile(re_year, ci);
    re.phase = compile(re_phase, ci);
    re.vph = compile(re_vph, ci);
    re.vph_bare = compile(re_vph_bare, ci);
    re.company = compile(re_company, 0);
    re.company_electric = compile(re_company_electric, PCRE2_MULTILINE);
    re.after_brand = compile(re_after_brand, ci);
    re.stopword = compile(re_stopword, ci);
    re.tag_before = compile(re_tag_before, ci);
    re.tag_after = compile(re_tag_after, ci);
    re.parent = compile(re_parent, ci);
    re.mctx = pcre2_match_context_create(NULL);
    if (re.mctx)
        pcre2_set_match_limit(re.mctx, 200000); /* no pattern needs more; a bound all the same */
    re.ok = re.label[0] && re.label[1] && re.alias[0] && re.alias[1] && re.alias[2] && re.num &&
            re.foreign && re.model && re.model_series && re.model_line && re.frame && re.encl &&
            re.encl_bare && re.sf && re.ins && re.eff && re.year && re.phase && re.vph &&
            re.vph_bare && re.company && re.company_electric && re.after_brand && re.stopword &&
            re.tag_before && re.tag_after && re.parent && re.mctx;
}

/* ---- the text ---- */

enum tok_kind { T_WORD, T_NUM, T_LABEL, T_FOREIGN };

struct token {
    uint32_t start, end; /* bytes of the cleaned text */
    uint16_t line;
    unsigned char kind;
    bool fuzzy;   /* a label read with confusions */
    bool glued;   /* a unit written onto its number: "460V" */
    bool claimed; /* a number some label has taken */
    bool foreign; /* a number with a unit Rivet does not read */
    bool done;    /* a label whose value was read another way */
    short owner;  /* the field that took a claimed number */
    short label;  /* labels[] index of a T_LABEL */
};

struct line {
    uint32_t start, end; /* bytes of the cleaned text, without the newline */
    uint32_t tok, ntok;
};

struct cand {
    char value[NP_VALUE_MAX];
    float score;
    bool set;
};

struct ctx {
    char *buf;     /* the cleaned text, NUL-terminated */
    uint32_t *map; /* buf offset -> offset in the caller's text */
    size_t len;
    const struct ocr_word *words;
    size_t n_words;
    struct line *lines;
    size_t n_lines;
    struct token *toks;
    size_t n_toks;
    pcre2_match_data *md;
    struct cand best[NP_FIELD_COUNT];
};

static bool is_alnum(unsigned char ch)
{
    return isascii(ch) && isalnum(ch);
}

/* Punctuation between tokens. */
static bool is_junk(unsigned char ch)
{
    return ch && strchr(":;,.=#_/\\*'\"!?<>^`@&+-$", ch);
}

/* Where an unlabelled word ends. */
static bool is_stop(unsigned char ch)
{
    return ch == ' ' || ch == ':' || ch == ';' || ch == '/' || ch == ',' || ch == '=';
}

/* Copies text into c->buf, one line per line: control bytes, NULs, box
 * rules and brackets become spaces, \r a line break, en and em dashes a
 * dash, smart quotes and no-break spaces a space. c->map keeps where each
 * byte came from. */
static int clean(struct ctx *c, const char *text, size_t len)
{
    size_t k = 0;

    if (len > TEXT_MAX)
        len = TEXT_MAX;
    c->buf = malloc(len + 1);
    c->map = malloc((len + 1) * sizeof(*c->map));
    if (!c->buf || !c->map)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        char o = (char)ch;

        if (ch == 0xE2 && i + 2 < len && (unsigned char)text[i + 1] == 0x80) {
            unsigned char t = (unsigned char)text[i + 2];

            if (t == 0x93 || t == 0x94 || t == 0x92 || t == 0x90 || t == 0x91)
                o = '-';
            else if (t >= 0x98 && t <= 0x9F)
                o = ' ';
            if (o != (char)ch) {
                c->map[k] = (uint32_t)i;
                c->buf[k++] = o;
                i += 2;
                continue;
            }
        }
        if (ch == 0xC2 && i + 1 < len && (unsigned char)text[i + 1] == 0xA0) {
            c->map[k] = (uint32_t)i;
            c->buf[k++] = ' ';
            i++;
            continue;
        }
        if (ch == '\r')
            o = '\n';
        else if ((ch < 0x20 && ch != '\n') || ch == 0x7F || strchr("|[]{}()", ch))
            o = ' '; /* strchr: ch is never NUL here */
        c->map[k] = (uint32_t)i;
        c->buf[k++] = o;
    }
    c->map[k] = (uint32_t)len;
    c->buf[k] = '\0';
    c->len = k;
    return 0;
}

/* Matches code at pos, anchored unless said otherwise, within [0, end).
 * Returns the number of captures + 1, or <= 0. */
static int match(struct ctx *c, const pcre2_code *code, size_t pos, size_t end, bool anchored)
{
    return pcre2_match(code, (PCRE2_SPTR)c->buf, end, pos, anchored ? PCRE2_ANCHORED : 0, c->md,
                       re.mctx);
}

static size_t ov(struct ctx *c, int i)
{
    return pcre2_get_ovector_pointer(c->md)[i];
}

/* Whether capture group g matched. */
static bool group_set(struct ctx *c, int rc, int g)
{
    return g < rc && ov(c, 2 * g) != PCRE2_UNSET;
}

static int mark_index(struct ctx *c)
{
    PCRE2_SPTR m = pcre2_get_mark(c->md);
    int n = 0;

    if (!m)
        return -1;
    for (; *m >= '0' && *m <= '9' && n < 100000; m++)
        n = n * 10 + (*m - '0');
    return n;
}

/* A label at pos: its index, end and whether it needed confusions. */
static bool label_at(struct ctx *c, size_t pos, size_t end, bool glued, bool line_start,
                     bool after_word, int *lab, size_t *lend, bool *fuzzy)
{
    for (int f = 0; f < (glued ? 1 : 2); f++) {
        int i;

        if (match(c, re.label[f], pos, end, true) <= 0)
            continue;
        i = mark_index(c);
        if (i < 0 || (size_t)i >= N_LABELS)
            continue;
        if (glued && !(labels[i].flags & L_GLUE))
            return false;
        if ((labels[i].flags & L_START) && !line_start && after_word)
            continue;
        *lab = i;
        *lend = ov(c, 1);
        *fuzzy = f == 1;
        return true;
    }
    return false;
}

static struct token *push(struct ctx *c, enum tok_kind kind, size_t start, size_t end, size_t line)
{
    struct token *t;

    if (c->n_toks >= TOKENS_MAX)
        return NULL;
    t = &c->toks[c->n_toks++];
    memset(t, 0, sizeof(*t));
    t->start = (uint32_t)start;
    t->end = (uint32_t)end;
    t->line = (uint16_t)line;
    t->kind = (unsigned char)kind;
    t->label = -1;
    t->owner = -1;
    return t;
}

/* A word of letters only: "Lot" in "Lot No. 12", which makes the "No." not
 * a serial's label. */
static bool letters_only(const struct ctx *c, const struct token *t)
{
    if (t->kind != T_WORD)
        return false;
    for (size_t i = t->start; i < t->end; i++)
        if (!isalpha((unsigned char)c->buf[i]) && c->buf[i] != '.')
            return false;
    return true;
}

/* A number token. "@-400Hz" is the end of a range whose start OCR lost:
 * not a value of its own. */
static void push_num(struct ctx *c, const struct line *l, size_t p, size_t q, size_t li)
{
    struct token *t = push(c, T_NUM, p, q, li);

    if (t && p >= l->start + 2 && c->buf[p - 1] == '-' && c->buf[p - 2] != ' ' &&
        !is_alnum((unsigned char)c->buf[p - 2]))
        t->foreign = true;
}

/* Cuts line li into tokens. */
static void lex_line(struct ctx *c, size_t li)
{
    struct line *l = &c->lines[li];
    size_t p = l->start, e = l->end;

    l->tok = (uint32_t)c->n_toks;
    while (p < e && c->n_toks < TOKENS_MAX) {
        struct token *prev, *t;
        size_t q;
        int lab;
        bool fuzzy;

        while (p < e && (c->buf[p] == ' ' || is_junk((unsigned char)c->buf[p])))
            p++;
        if (p >= e)
            break;
        prev = c->n_toks > l->tok ? &c->toks[c->n_toks - 1] : NULL;
        if (label_at(c, p, e, false, !prev, prev && letters_only(c, prev), &lab, &q, &fuzzy)) {
            t = push(c, T_LABEL, p, q, li);
            t->label = (short)lab;
            t->fuzzy = fuzzy;
            t->glued = prev && prev->kind == T_NUM && prev->end == p;
            p = q;
            continue;
        }
        if (prev && prev->kind == T_NUM && match(c, re.foreign, p, e, true) > 0) {
            prev->foreign = true;
            q = ov(c, 1);
            push(c, T_FOREIGN, p, q, li);
            p = q;
            continue;
        }
        if (match(c, re.num, p, e, true) > 0) {
            size_t r;

            q = ov(c, 1);
            if (q >= e || !is_alnum((unsigned char)c->buf[q])) {
                push_num(c, l, p, q, li);
                p = q;
                continue;
            }
            if (label_at(c, q, e, true, false, false, &lab, &r, &fuzzy)) {
                push_num(c, l, p, q, li);
                t = push(c, T_LABEL, q, r, li);
                if (t) {
                    t->label = (short)lab;
                    t->glued = true;
                }
                p = r;
                continue;
            }
            if (match(c, re.foreign, q, e, true) > 0) {
                r = ov(c, 1);
                t = push(c, T_NUM, p, q, li);
                if (t)
                    t->foreign = true;
                push(c, T_FOREIGN, q, r, li);
                p = r;
                continue;
            }
        }
        for (q = p; q < e && !is_stop((unsigned char)c->buf[q]); q++)
            ;
        if (q == p)
            q++;
        push(c, T_WORD, p, q, li);
        p = q;
    }
    l->ntok = (uint32_t)c->n_toks - l->tok;
}

static int lex(struct ctx *c)
{
    size_t start = 0;

    c->lines = calloc(LINES_MAX, sizeof(*c->lines));
    c->toks = calloc(TOKENS_MAX, sizeof(*c->toks));
    if (!c->lines || !c->toks)
        return -ENOMEM;
    while (start <= c->len && c->n_lines < LINES_MAX) {
        const char *nl = memchr(c->buf + start, '\n', c->len - start);
        size_t end = nl ? (size_t)(nl - c->buf) : c->len;

        c->lines[c->n_lines].start = (uint32_t)start;
        c->lines[c->n_lines].end = (uint32_t)end;
        lex_line(c, c->n_lines++);
        start = end + 1;
    }
    return 0;
}

/* ---- confidence and candidates ---- */

/* The mean confidence (0..1) of the OCR words over buf[start, end). */
static float words_conf(const struct ctx *c, size_t start, size_t end)
{
    size_t s, e, lo = 0, hi = c->n_words, n = 0;
    float sum = 0;

    if (!c->words || !c->n_words || end <= start || end > c->len)
        return NO_WORDS;
    s = c->map[start];
    e = c->map[end - 1] + 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (c->words[mid].start < s)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0)
        lo--; /* the word before may reach into the value */
    for (size_t i = lo; i < c->n_words && c->words[i].start < e; i++) {
        float conf = c->words[i].conf;

        if (c->words[i].end <= s)
            continue;
        sum += conf < 0 ? 0 : conf > 100 ? 1 : conf / 100;
        n++;
    }
    return n ? sum / (float)n : NO_WORDS;
}

/* Proposes value for field f, read from buf[start, end) with a pattern fit.
 * The first candidate stays unless a later one is clearly surer: a plate's
 * main rating comes before its fan's or its pump's. */
static void offer(struct ctx *c, int f, const char *value, float fit, size_t start, size_t end)
{
    struct cand *b;
    float score, margin = f == NP_MANUFACTURER ? 0.0f : 0.1f;

    if (f < 0 || f >= NP_FIELD_COUNT || !value[0])
        return;
    b = &c->best[f];
    score = fit * words_conf(c, start, end);
    if (b->set && score <= b->score + margin)
        return;
    /* Cut to the field's room, as snprintf would, without the warning an
     * optimizing build gives for snprintf's truncation. */
    size_t n = strnlen(value, sizeof(b->value) - 1);
    memcpy(b->value, value, n);
    b->value[n] = '\0';
    b->score = score;
    b->set = true;
}

/* ---- values ---- */

static bool parse_part(const char *s, size_t n, double *v)
{
    char tmp[32];
    char *end;

    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    *v = strtod(tmp, &end);
    return end == tmp + n;
}

/* A number token as field f's value: O read as 0, a decimal comma as a dot,
 * spaces and V/A letters out, every part of a list or range within the
 * field's bounds. false when it is not a plausible value. */
static bool num_value(struct ctx *c, const struct token *t, int f, char *out, size_t n, bool *fuzzy)
{
    static const double lo[] = {[NP_VOLTS] = 5, [NP_AMPS] = 0.01, [NP_HP] = 0.01, [NP_KW] = 0.01,
                                [NP_RPM] = 10,  [NP_HZ] = 10,     [NP_PHASE] = 1};
    static const double hi[] = {
        [NP_VOLTS] = 50000, [NP_AMPS] = 50000, [NP_HP] = 100000, [NP_KW] = 100000,
        [NP_RPM] = 100000,  [NP_HZ] = 1000,    [NP_PHASE] = 3};
    size_t k = 0, part = 0, parts = 0;
    double vmin = 1e9, vmax = 0;

    *fuzzy = false;
    if (f < NP_VOLTS || f > NP_PHASE)
        return false;
    for (size_t i = t->start; i < t->end; i++) {
        char ch = c->buf[i];

        if (k + 2 >= n)
            return false;
        if (ch >= '0' && ch <= '9') {
            out[k++] = ch;
        } else if (ch == 'O' || ch == 'o' || ch == 'I' || ch == 'l') {
            out[k++] = (ch == 'O' || ch == 'o') ? '0' : '1';
            *fuzzy = true;
        } else if (ch == ',' || ch == '.') {
            size_t d = 0;

            while (i + 1 + d < t->end && isdigit((unsigned char)c->buf[i + 1 + d]))
                d++;
            if (ch == ',' && d == 3) {
                if (f != NP_RPM)
                    return false; /* "40,848": thousands or decimals? */
                continue;
            }
            out[k++] = '.';
        } else if (ch == '-' || ch == '/') {
            out[k++] = ch;
        }
    }
    out[k] = '\0';
    /* every part of "208-230/460" within bounds */
    for (size_t i = 0; i <= k; i++) {
        if (i < k && out[i] != '-' && out[i] != '/')
            continue;
        double v;

        if (!parse_part(out + part, i - part, &v) || v < lo[f] || v > hi[f])
            return false;
        if (f == NP_PHASE && v != 1 && v != 3)
            return false;
        if (f == NP_HZ && (v > 400 || (fmod(v, 5) != 0 && (v < 16 || v > 17))))
            return false; /* 50, 60, 400, 16 2/3; not "460" */
        part = i + 1;
        parts++;
        vmin = v < vmin ? v : vmin;
        vmax = v > vmax ? v : vmax;
    }
    /* the ratings of one machine at its voltages: "208-230/460",
     * "19.0/9.5"; not "9/860" */
    if ((f == NP_VOLTS || f == NP_AMPS) && vmax > 5 * vmin)
        return false;
    /* horsepower: a fraction ("1/6") or speeds of one motor ("10/5") */
    if (f == NP_HP && vmax > 5 * vmin && !(parts == 2 && strchr(out, '/') && vmax <= 16))
        return false;
    return parts >= 1 && parts <= 4;
}

/* Upper case; O read between digits becomes 0; a spaced dash closes up. */
static void norm_code(const char *s, size_t n, char *out, size_t outsz)
{
    size_t k = 0;

    for (size_t i = 0; i < n && k + 1 < outsz; i++) {
        char ch = (char)toupper((unsigned char)s[i]);

        if (ch == ' ')
            continue;
        if (ch == 'O' && k > 0 && isdigit((unsigned char)out[k - 1]) && i + 1 < n &&
            (isdigit((unsigned char)s[i + 1]) || toupper((unsigned char)s[i + 1]) == 'O'))
            ch = '0';
        out[k++] = ch;
    }
    out[k] = '\0';
    /* a run like "4821O6" fixed left to right above; "O" at a run's end */
    for (size_t i = 1; i + 1 < k; i++)
        if (out[i] == 'O' && isdigit((unsigned char)out[i - 1]) &&
            isdigit((unsigned char)out[i + 1]))
            out[i] = '0';
}

/* An enclosure: upper case; an IP code as "IP55" with 1 or l read for I,
 * S for 5 and O for 0 put right. */
static void norm_encl(const char *s, size_t n, char *out, size_t outsz)
{
    norm_code(s, n, out, outsz);
    if (strlen(out) == 4 && out[1] == 'P' && strchr("I1L", out[0])) {
        out[0] = 'I';
        for (char *p = out + 2; *p; p++)
            *p = *p == 'S' ? '5' : *p == 'O' ? '0' : *p;
    }
}

static size_t count_digits_n(const char *s, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += isdigit((unsigned char)s[i]) != 0;
    return k;
}

static size_t count_digits(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += isdigit((unsigned char)*s) != 0;
    return n;
}

static size_t count_alnum(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += is_alnum((unsigned char)*s);
    return n;
}

/* The token that starts at or after pos on line li, or NULL. */
static struct token *token_at(struct ctx *c, size_t li, size_t pos)
{
    const struct line *l = &c->lines[li];

    for (size_t i = l->tok; i < l->tok + l->ntok; i++)
        if (c->toks[i].start >= pos)
            return &c->toks[i];
    return NULL;
}

/* "A: 5.7": a label, not the unit of the number before it. */
static bool followed_by_colon(const struct ctx *c, const struct token *t)
{
    size_t e = c->lines[t->line].end, i = t->end;

    while (i < e && c->buf[i] == ' ')
        i++;
    return !t->glued && i < e && (c->buf[i] == ':' || c->buf[i] == '=');
}

/* Whether the token after buf[..end) on line li is the unit of another
 * field ("... 460 V", "... 60 HZ" at the end), so the number before it is
 * that field's, not the label's. */
static bool unit_follows(struct ctx *c, size_t li, size_t end, int f)
{
    struct token *u = token_at(c, li, end);
    const struct label *lb;
    const struct line *l = &c->lines[li];

    if (!u || u->kind != T_LABEL)
        return false;
    lb = &labels[u->label];
    if (lb->field == f || !(lb->flags & L_BEFORE) || followed_by_colon(c, u))
        return false; /* "... A: 12": a label of its own */
    if (u->glued || !(lb->flags & L_AFTER))
        return true;
    /* a label that takes a value after it: "HP 10 RPM 1755" */
    return !(u + 1 < c->toks + l->tok + l->ntok && u[1].kind == T_NUM);
}

/* Marks the numbers inside buf[start, end) of line li as taken by field f. */
static void claim(struct ctx *c, size_t li, size_t start, size_t end, int f)
{
    const struct line *l = &c->lines[li];

    for (size_t i = l->tok; i < l->tok + l->ntok; i++)
        if (c->toks[i].start >= start && c->toks[i].start < end) {
            c->toks[i].claimed = true;
            c->toks[i].owner = (short)f;
        }
}

/* A serial printed in groups: "R8998/8062581 59 632". At most two groups
 * of 2 or 3 digits, ending the line or before a label. */
static void serial_groups(struct ctx *c, size_t li, char *out, size_t n, size_t *e)
{
    struct token *g[2];
    size_t k = 0, end = *e, len = strlen(out);

    while (k < 2) {
        struct token *u = token_at(c, li, end);

        if (!u || u->kind != T_NUM || u->start != end + 1 || c->buf[end] != ' ' || u->claimed ||
            u->foreign || u->end - u->start < 2 || u->end - u->start > 3 ||
            count_digits_n(c->buf + u->start, u->end - u->start) != u->end - u->start)
            break;
        g[k++] = u;
        end = u->end;
    }
    if (!k)
        return;
    struct token *after = token_at(c, li, end);

    if (after && (after->kind != T_LABEL || unit_follows(c, li, end, -1)))
        return; /* "S/N 123456 60 HZ": the 60 is a rating */
    for (size_t i = 0; i < k && len + 4 < n; i++) {
        snprintf(out + len, n - len, " %.*s", (int)(g[i]->end - g[i]->start), c->buf + g[i]->start);
        len = strlen(out);
    }
    *e = end;
}

/* Whether a value ending at e goes on past the line: "10.0481119640."
 * over "1188.48", "0014-". Better no value than half of one. */
static bool cut_at(const struct ctx *c, const struct line *l, size_t e)
{
    size_t i = e;

    if (i >= l->end || !strchr(".-/", c->buf[i]))
        return false;
    for (i++; i < l->end; i++)
        if (c->buf[i] != ' ' && !is_junk((unsigned char)c->buf[i]))
            return false;
    return true;
}

/* Whether a label that takes a value starts right after buf[..pos). */
static bool next_is_label(struct ctx *c, size_t li, size_t pos)
{
    const struct token *u = token_at(c, li, pos);

    return u && u->kind == T_LABEL && (labels[u->label].flags & L_AFTER) && !u->glued;
}

/* Reads a model or serial at token t. */
static bool code_value(struct ctx *c, const struct token *t, int f, char *out, size_t n,
                       size_t *vend)
{
    const struct line *l = &c->lines[t->line];
    size_t s = t->start, e, pre = 0;

    if (match(c, re.model_series, s, l->end, true) > 0 ||
        (f == NP_MODEL && match(c, re.model_line, s, l->end, true) > 0)) {
        pre = ov(c, 1) - s; /* "CR " */
        s += pre;
    }
    if (match(c, re.model, s, l->end, true) <= 0)
        return false;
    e = ov(c, 1);
    if (cut_at(c, l, e))
        return false;
    if (e - t->start > MODEL_MAX + 8)
        return false;
    norm_code(c->buf + s, e - s, out + pre, n - pre);
    for (size_t i = 0; i < pre; i++)
        out[i] = (char)toupper((unsigned char)c->buf[t->start + i]);
    if (count_digits(out) < (f == NP_SERIAL ? 2u : 1u) ||
        count_alnum(out) < (f == NP_SERIAL ? 4u : 3u) || strlen(out) > MODEL_MAX)
        return false;
    if (count_digits(out) == count_alnum(out) && count_digits(out) < 4)
        return false; /* "120": more likely a rating than a model */
    if (f == NP_SERIAL)
        serial_groups(c, t->line, out, n, &e);
    /* a model printed in parts: "M3BP 160MLA" */
    for (int more = 0; f == NP_MODEL && more < 2; more++) {
        struct token *u = token_at(c, t->line, e);
        size_t len = strlen(out), d = 0, a = 0;

        if (!u || u->start != e + 1 || c->buf[e] != ' ')
            break;
        if (more && u->kind == T_NUM && u->end - u->start <= 2 && !u->claimed &&
            !unit_follows(c, t->line, u->end, f) && len + 1 + 2 < MODEL_MAX) {
            /* the poles of an IEC type: "M3BP 160MLA 4" */
            snprintf(out + len, n - len, " %.*s", (int)(u->end - u->start), c->buf + u->start);
            e = u->end;
            break;
        }
        size_t we = u->start, dash = 0;

        /* the word as printed: "118VA" is a number and a unit to the lexer */
        while (we < c->lines[t->line].end && !is_stop((unsigned char)c->buf[we]))
            we++;
        if ((u->kind == T_LABEL && !u->glued) || u->kind == T_FOREIGN ||
            (u->kind == T_NUM && u + 1 < c->toks + c->n_toks && u[1].kind == T_LABEL && u[1].glued))
            break; /* a rating: "460V" */
        for (size_t i = u->start; i < we; i++) {
            unsigned char ch = (unsigned char)c->buf[i];

            d += isdigit(ch) != 0;
            a += isalpha(ch) != 0;
            dash += ch == '-' && i > u->start && i + 1 < we && c->buf[i - 1] != '-';
        }
        /* letters and digits ("160MLA"), or groups joined by dashes
         * ("A-F-A-E-HQQE"); not a label of its own ("N2:") */
        if (d + a + dash != we - u->start || (!(d && a) && dash < 2) ||
            len + 1 + (we - u->start) > MODEL_MAX ||
            (we < c->lines[t->line].end && c->buf[we] == ':') ||
            (we - u->start <= 3 && next_is_label(c, t->line, we)))
            break; /* not a label of its own: "N2:", "N2 serie" (OCR's N°) */
        out[len] = ' ';
        norm_code(c->buf + u->start, we - u->start, out + len + 1, n - len - 1);
        e = we;
    }
    *vend = e;
    return true;
}

static const char ins_class[] = "ABEFHNR";

/* Reads field f's value by its pattern at token t (not a number field).
 * Returns the end of the value or 0. */
static size_t pattern_value(struct ctx *c, const struct token *t, int f, char *out, size_t n)
{
    const struct line *l = &c->lines[t->line];
    size_t e = 0;
    int rc;

    out[0] = '\0';
    switch (f) {
    case NP_MODEL:
    case NP_SERIAL:
        return code_value(c, t, f, out, n, &e) ? e : 0;
    case NP_FRAME:
        if (match(c, re.frame, t->start, l->end, true) <= 0 || cut_at(c, l, ov(c, 1)))
            return 0;
        norm_code(c->buf + ov(c, 2), ov(c, 3) - ov(c, 2), out, n);
        return ov(c, 1);
    case NP_ENCLOSURE:
        if (match(c, re.encl, t->start, l->end, true) <= 0)
            return 0;
        norm_encl(c->buf + ov(c, 2), ov(c, 3) - ov(c, 2), out, n);
        return ov(c, 1);
    case NP_SERVICE_FACTOR:
    case NP_EFFICIENCY: {
        double v;

        if (match(c, f == NP_EFFICIENCY ? re.eff : re.sf, t->start, l->end, true) <= 0)
            return 0;
        snprintf(out, n, "%.*s", (int)(ov(c, 3) - ov(c, 2)), c->buf + ov(c, 2));
        for (char *p = out; *p; p++)
            *p = *p == ',' ? '.' : *p;
        v = strtod(out, NULL);
        if (f == NP_SERVICE_FACTOR ? (v < 1 || v > 2) : (v < 50 || v >= 100))
            return 0;
        return ov(c, 1);
    }
    case NP_INSULATION:
        rc = match(c, re.ins, t->start, l->end, true);
        if (rc <= 0)
            return 0;
        if (group_set(c, rc, 1) || group_set(c, rc, 3)) {
            int g = group_set(c, rc, 1) ? 1 : 3;

            snprintf(out, n, "%c", toupper((unsigned char)c->buf[ov(c, 2 * g)]));
        } else {
            static const char *const temps[] = {"105", "120", "130", "155", "180", "200", "220"};

            for (size_t i = 0; i < 7; i++)
                if (!strncmp(c->buf + ov(c, 4), temps[i], 3))
                    snprintf(out, n, "%c", ins_class[i]);
        }
        return ov(c, 1);
    case NP_YEAR: {
        long y;

        if (match(c, re.year, t->start, l->end, true) <= 0)
            return 0;
        norm_code(c->buf + ov(c, 2), ov(c, 3) - ov(c, 2), out, n);
        y = strtol(out, NULL, 10);
        if (strlen(out) == 4 && count_digits(out) == 4 &&
            (!strncmp(out, "19", 2) || !strncmp(out, "20", 2)) && (y < 1950 || y > 2039))
            return 0; /* "1905": a year, and not a plausible one */
        return ov(c, 1);
    }
    default:
        return 0;
    }
}

/* Phase from a word: "SINGLE", "THREE", "TRIFASICO". */
static bool phase_word(struct ctx *c, const struct token *t, char *out, size_t n)
{
    int rc = match(c, re.phase, t->start, c->lines[t->line].end, true);

    if (rc <= 0)
        return false;
    snprintf(out, n, "%s", group_set(c, rc, 1) ? "1" : "3");
    return true;
}

/* Title case for a name printed in capitals; a name in mixed case stays.
 * Only ASCII and whole UTF-8 characters are kept. */
static void title_case(const char *s, size_t n, char *out, size_t outsz)
{
    static const char *const keep[] = {"INC", "CO", "CORP", "LTD", "LLC", "GMBH", "AG",
                                       "SA",  "BV", "NV",   "PLC", "KG",  "LP"};
    static const char *const as[] = {"Inc", "Co", "Corp", "Ltd", "LLC", "GmbH", "AG",
                                     "SA",  "BV", "NV",   "PLC", "KG",  "LP"};
    bool lower = false;
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        lower |= islower((unsigned char)s[i]) != 0;
    for (size_t i = 0; i < n && k + 5 < outsz;) {
        unsigned char ch = (unsigned char)s[i];
        size_t w = i, cl;

        if (ch >= 0x80) { /* a whole, valid UTF-8 character or nothing */
            cl = ch >= 0xF0 && ch < 0xF5 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC2 && ch < 0xE0 ? 2 : 0;
            bool ok = cl && i + cl <= n;

            for (size_t j = 1; ok && j < cl; j++)
                ok = ((unsigned char)s[i + j] & 0xC0) == 0x80;
            if (ok) {
                memcpy(out + k, s + i, cl);
                k += cl;
                i += cl;
            } else {
                i++;
            }
            continue;
        }
        if (!isalpha(ch) || lower) {
            out[k++] = (char)ch;
            i++;
            continue;
        }
        while (w < n && isalpha((unsigned char)s[w]))
            w++;
        size_t wl = w - i, j;

        for (j = 0; j < sizeof(keep) / sizeof(keep[0]); j++)
            if (strlen(keep[j]) == wl && !strncasecmp(s + i, keep[j], wl))
                break;
        if (j < sizeof(keep) / sizeof(keep[0])) {
            snprintf(out + k, outsz - k, "%s", as[j]);
            k += strlen(as[j]);
        } else {
            for (size_t m = 0; m < wl && k + 1 < outsz; m++)
                out[k++] = (char)(m == 0 ? toupper((unsigned char)s[i + m])
                                         : tolower((unsigned char)s[i + m]));
        }
        i = w;
    }
    out[k < outsz ? k : outsz - 1] = '\0';
}

/* A manufacturer name in buf[start, end): the canonical name when the
 * alias table knows it, else the text title-cased. */
static bool name_value(struct ctx *c, size_t start, size_t end, char *out, size_t n)
{
    size_t letters = 0;

    for (int f = 0; f < 2; f++)
        if (match(c, re.alias[f], start, end, false) > 0) {
            int i = mark_index(c);

            if (i >= 0 && (size_t)i < N_ALIASES) {
                snprintf(out, n, "%s", aliases[i].name);
                return true;
            }
        }
    for (size_t i = start; i < end; i++)
        letters += isalpha((unsigned char)c->buf[i]) != 0;
    if (letters < 4 || (!memchr(c->buf + start, ' ', end - start) && c->buf[end - 1] == '.'))
        return false; /* not a name: "XYZ", "FACT." */
    title_case(c->buf + start, end - start, out, n);
    return out[0] != '\0';
}

/* A manufacturer written after its label (or on the line below it): the
 * words up to a number, a label, punctuation or NAME_WORDS. */
static void read_name(struct ctx *c, const struct token *t, float fit, bool next_line)
{
    const struct line *l = &c->lines[t->line];
    const struct token *end = c->toks + l->tok + l->ntok, *last = NULL;
    char name[NP_VALUE_MAX];
    int words = 0;

    for (const struct token *u = t; u < end && words < NAME_WORDS; u++, words++) {
        if (u->kind != T_WORD)
            break;
        if (last) { /* only spaces between the words */
            bool gap = false;

            for (size_t i = last->end; i < u->start; i++)
                gap |= c->buf[i] != ' ';
            if (gap)
                break;
        }
        if (!isalpha((unsigned char)c->buf[u->start]) && (unsigned char)c->buf[u->start] < 0x80)
            break;
        last = u;
    }
    if (!last || (next_line && last + 1 < end && last[1].kind == T_LABEL))
        return; /* a row of labels under the label: "PLANT  DATE" under "MFR" */
    if (!name_value(c, t->start, last->end, name, sizeof(name)))
        return;
    offer(c, NP_MANUFACTURER, name, fit, t->start, last->end);
}

/* The token a label's value starts at: after the label (skipping
 * qualifiers and labels of the same field), or the first token of the next
 * non-blank line when the label ends its line and is its line's only label
 * (a header row of labels is a table, not labels over values). */
static struct token *value_token(struct ctx *c, size_t i, bool *next_line)
{
    struct token *t = &c->toks[i];
    const struct line *l = &c->lines[t->line];
    size_t end = l->tok + l->ntok, j = i + 1;
    int f = labels[t->label].field;

    *next_line = false;
    while (j < end && c->toks[j].kind == T_LABEL &&
           (labels[c->toks[j].label].field == f || labels[c->toks[j].label].field == F_QUAL))
        j++;
    if (j < end)
        return &c->toks[j];
    for (size_t k = l->tok; k < end; k++) {
        const struct token *u = &c->toks[k];
        bool unit = u->glued || (k > l->tok && u[-1].kind == T_NUM); /* "3~", "460 V" */

        if (u->kind == T_LABEL && labels[u->label].field != f && labels[u->label].field != F_QUAL &&
            !unit)
            return NULL;
    }
    for (size_t li = t->line + 1u; li < c->n_lines; li++) {
        const struct line *n = &c->lines[li];

        if (n->ntok) {
            *next_line = true;
            return &c->toks[n->tok];
        }
        for (size_t k = n->start; k < n->end; k++)
            if (c->buf[k] != ' ')
                return NULL; /* a rule ("———") parts the label from what follows */
    }
    return NULL;
}

/* A number-field value at token v for label t. */
static bool number_after(struct ctx *c, const struct token *t, struct token *v, float fit)
{
    int f = labels[t->label].field;
    char val[NP_VALUE_MAX];
    bool fuzzy;

    if (v->kind != T_NUM || v->claimed || v->foreign || unit_follows(c, v->line, v->end, f))
        return false;
    if (!num_value(c, v, f, val, sizeof(val), &fuzzy))
        return false;
    offer(c, f, val, fit * (fuzzy ? FIT_NUM : 1), v->start, v->end);
    v->claimed = true;
    v->owner = (short)f;
    return true;
}

/* A unit written as a symbol: V, A, VAC. */
static bool is_symbol(const struct label *lb)
{
    return (lb->flags & L_BEFORE) && lb->ufit < 0.8f;
}

/* "V 230/400" at the start of a line, or after another rating: a symbol
 * as a label. Not "A 10 YEAR WARRANTY". */
static bool symbol_value_ok(struct ctx *c, const struct token *t, const struct token *v)
{
    const struct line *l = &c->lines[t->line];
    const struct token *end = c->toks + l->tok + l->ntok;

    if (v->line != t->line || v->kind != T_NUM)
        return false;
    for (size_t i = t->end; i < v->start; i++)
        if (c->buf[i] != ' ' && c->buf[i] != ':' && c->buf[i] != '=')
            return false; /* "a $4" */
    if (followed_by_colon(c, t))
        return true; /* "V: 230/460" */
    if (!isupper((unsigned char)c->buf[t->start]))
        return false; /* a plate prints V and A in capitals; "a" is noise */
    if (t > c->toks + l->tok && t[-1].kind != T_NUM && t[-1].kind != T_LABEL)
        return false;
    return v + 1 >= end || v[1].kind == T_LABEL;
}

/* The value after label i. */
static void value_after(struct ctx *c, size_t i)
{
    struct token *t = &c->toks[i], *v;
    const struct label *lb = &labels[t->label];
    int f = lb->field;
    float fit = lb->rank * (t->fuzzy ? FIT_FUZZY : 1);
    char val[NP_VALUE_MAX];
    bool next_line;
    size_t e;

    v = value_token(c, i, &next_line);
    if (!v)
        return;
    if (next_line)
        fit *= FIT_NEXT;
    if (v->kind == T_LABEL && !is_symbol(&labels[v->label]))
        return; /* another label: this one has no value here */
    if (is_symbol(lb) && !symbol_value_ok(c, t, v))
        return;
    if (f == F_IGNORE) {
        if (v->kind == T_NUM && !next_line)
            v->claimed = true;
        return;
    }
    if (f == NP_MANUFACTURER) {
        read_name(c, v, fit, next_line);
        return;
    }
    if (f == NP_PHASE && v->kind == T_WORD && phase_word(c, v, val, sizeof(val))) {
        offer(c, f, val, fit, v->start, v->end);
        return;
    }
    if (f >= NP_VOLTS && f <= NP_PHASE) {
        number_after(c, t, v, fit);
        return;
    }
    if (f == F_VPH) {
        int rc = match(c, re.vph, v->start, c->lines[v->line].end, true);

        if (rc <= 0)
            return;
        for (int g = 1; g <= 3; g++) {
            snprintf(val, sizeof(val), "%.*s", (int)(ov(c, 2 * g + 1) - ov(c, 2 * g)),
                     c->buf + ov(c, 2 * g));
            offer(c, g == 1 ? NP_VOLTS : g == 2 ? NP_PHASE : NP_HZ, val, fit, v->start, ov(c, 1));
        }
        claim(c, v->line, v->start, ov(c, 1), NP_VOLTS);
        return;
    }
    e = pattern_value(c, v, f, val, sizeof(val));
    if (!e)
        return;
    if (count_digits(val) == count_alnum(val) && unit_follows(c, v->line, e, f))
        return; /* "FR 460 V": a number of another field */
    offer(c, f, val, fit, v->start, e);
    claim(c, v->line, v->start, e, f);
}

/* Whether a number with a bare V or A is a rating: next to another rating
 * on its line, or shaped like one ("460V", "230/460V", "12.4A"); "2A"
 * alone is as likely a part number. */
static bool bare_unit_ok(struct ctx *c, const struct token *t, int f, const char *val)
{
    const struct line *l = &c->lines[t->line];

    for (size_t i = l->tok; i < l->tok + l->ntok; i++) {
        const struct token *u = &c->toks[i];
        int g = u->kind == T_LABEL ? labels[u->label].field : -1;

        if (u != t && g >= NP_VOLTS && g <= NP_PHASE && g != f)
            return true;
    }
    if (strpbrk(val, "/-"))
        return true;
    return f == NP_VOLTS ? strtod(val, NULL) >= 100 : strchr(val, '.') != NULL;
}

/* The value before unit label i: "460 V", "1755rpm", "THREE PHASE". */
static bool value_before(struct ctx *c, size_t i)
{
    struct token *t = &c->toks[i], *p;
    const struct label *lb = &labels[t->label];
    int f = lb->field;
    float fit = lb->ufit * (t->fuzzy ? FIT_FUZZY : 1);
    char val[NP_VALUE_MAX];
    bool fuzzy;

    if (i == 0 || c->toks[i - 1].line != t->line)
        return false;
    p = &c->toks[i - 1];
    for (size_t k = p->end; k < t->start; k++)
        if (c->buf[k] != ' ')
            return false;
    if (f == NP_PHASE && p->kind == T_WORD && phase_word(c, p, val, sizeof(val))) {
        offer(c, f, val, fit, p->start, p->end);
        return true;
    }
    if (p->kind != T_NUM || p->claimed || p->foreign)
        return false;
    if (!num_value(c, p, f, val, sizeof(val), &fuzzy))
        return false;
    if (lb->ufit < 0.8f && !bare_unit_ok(c, t, f, val))
        return false;
    offer(c, f, val, fit * (fuzzy ? FIT_NUM : 1), p->start, p->end);
    p->claimed = true;
    p->owner = (short)f;
    return true;
}

static void read_labels(struct ctx *c)
{
    for (size_t i = 0; i < c->n_toks; i++) {
        const struct token *t = &c->toks[i];
        const struct label *lb;

        if (t->kind != T_LABEL)
            continue;
        lb = &labels[t->label];
        if (lb->field == F_QUAL || t->done)
            continue;
        if ((lb->flags & L_BEFORE) && !followed_by_colon(c, t)) {
            if (value_before(c, i))
                continue;
            if (i > 0 && c->toks[i - 1].line == t->line && c->toks[i - 1].kind == T_NUM &&
                c->toks[i - 1].owner == lb->field)
                continue; /* the unit of a value read already: "Potencia: 4 kW" */
        }
        if ((lb->flags & L_AFTER) && !t->glued)
            value_after(c, i);
    }
}

/* ---- tables ---- */

/* The only token of line li that is not a qualifier, or NULL. */
static struct token *sole_token(struct ctx *c, size_t li)
{
    const struct line *l = &c->lines[li];
    struct token *one = NULL;

    for (size_t i = l->tok; i < l->tok + l->ntok; i++) {
        struct token *t = &c->toks[i];

        if (t->kind == T_LABEL && labels[t->label].field == F_QUAL)
            continue;
        if (one)
            return NULL;
        one = t;
    }
    return one;
}

/* Offers the values of a column table, all of them or, when one does not
 * read as its field's, none. */
static bool vertical_values(struct ctx *c, struct token **lab, struct token **val, size_t k)
{
    char v[8][NP_VALUE_MAX];
    size_t end[8];

    for (size_t j = 0; j < k; j++) {
        int f = labels[lab[j]->label].field;
        bool fuzzy;

        if (f >= NP_VOLTS && f <= NP_PHASE) {
            if (val[j]->kind != T_NUM || val[j]->foreign ||
                !num_value(c, val[j], f, v[j], sizeof(v[j]), &fuzzy))
                return false;
            end[j] = val[j]->end;
        } else if (f == NP_MANUFACTURER ||
                   !(end[j] = pattern_value(c, val[j], f, v[j], sizeof(v[j])))) {
            return false;
        }
    }
    for (size_t j = 0; j < k; j++)
        offer(c, labels[lab[j]->label].field, v[j], FIT_TABLE, val[j]->start, end[j]);
    return true;
}

/* A table read down a column, as sparse-text OCR prints one:
 *   HP / FLA / 2.0 / 3.4
 * k lines of one label each (k >= 2, different fields), then k lines of
 * one value each, in the same order. Anything else is left to the labels. */
static void read_vertical(struct ctx *c)
{
    size_t idx[LINES_MAX > 64 ? 64 : LINES_MAX], n = 0;

    for (size_t li = 0; li < c->n_lines; li++)
        if (c->lines[li].ntok && n < 64)
            idx[n++] = li;
    for (size_t i = 0; i < n;) {
        struct token *lab[8], *val[8];
        size_t k = 0, m = 0;
        int seen = 0;

        while (i + k < n && k < 8) {
            struct token *t = sole_token(c, idx[i + k]);
            int f = t && t->kind == T_LABEL ? labels[t->label].field : -1;

            if (f < NP_MANUFACTURER || f >= NP_FIELD_COUNT || !(labels[t->label].flags & L_AFTER) ||
                (seen & (1 << f)))
                break;
            seen |= 1 << f;
            lab[k++] = t;
        }
        if (k < 2) {
            i += k ? k : 1;
            continue;
        }
        while (m < k && i + k + m < n) {
            struct token *t = sole_token(c, idx[i + k + m]);

            if (!t || t->kind == T_LABEL)
                break;
            val[m++] = t;
        }
        if (m == k && vertical_values(c, lab, val, k))
            for (size_t j = 0; j < k; j++) {
                lab[j]->done = true;
                val[j]->claimed = true;
            }
        i += k + m;
    }
}

static bool table_field(int f)
{
    return (f >= NP_VOLTS && f <= NP_PHASE) || f == NP_SERVICE_FACTOR || f == NP_EFFICIENCY;
}

/* Field f's value in a table cell, or false. */
static bool cell_value(struct ctx *c, struct token *t, int f, char *out, size_t n)
{
    bool fuzzy;

    if (t->kind != T_NUM || t->claimed || t->foreign)
        return false;
    if (f >= NP_VOLTS && f <= NP_PHASE)
        return num_value(c, t, f, out, n, &fuzzy);
    return pattern_value(c, t, f, out, n) == t->end;
}

/* A star or delta mark in a row of ratings: "400 Δ 50 13,9". */
static bool is_mark(const struct ctx *c, const struct token *t)
{
    size_t n = t->end - t->start;

    if (t->kind != T_WORD)
        return false;
    for (size_t i = t->start; i < t->end; i++)
        if (is_alnum((unsigned char)c->buf[i]))
            return (n == 1 && strchr("YD", c->buf[t->start])) ||
                   (n == 2 && !strncmp(c->buf + t->start, "YY", 2));
    return true;
}

/* Maps the numbers of one row onto the columns cols[from..] (from the
 * left), all or nothing: every field must read. */
static bool table_row(struct ctx *c, const int *cols, int ncols, int from, struct token **nums,
                      size_t nnums)
{
    char vals[32][NP_VALUE_MAX];
    int mapped = 0;

    if ((size_t)(ncols - from) < nnums)
        return false;
    for (size_t k = 0; k < nnums; k++) {
        int f = cols[from + (int)k];

        if (!table_field(f))
            continue;
        if (!cell_value(c, nums[k], f, vals[k], sizeof(vals[k])))
            return false;
        mapped++;
    }
    if (mapped < 2)
        return false;
    for (size_t k = 0; k < nnums; k++) {
        int f = cols[from + (int)k];

        if (!table_field(f))
            continue;
        offer(c, f, vals[k], FIT_TABLE, nums[k]->start, nums[k]->end);
        nums[k]->claimed = true;
        nums[k]->owner = (short)f;
    }
    return true;
}

/* The numbers of a table row: a name first ("COMPRESSOR", "Indoor 1"
 * is read as a number), then numbers only. */
static size_t row_numbers(struct ctx *c, const struct line *r, struct token **nums, size_t max)
{
    size_t n = 0;

    for (size_t i = r->tok; i < r->tok + r->ntok; i++) {
        struct token *t = &c->toks[i];

        if (is_mark(c, t))
            continue;
        if (t->kind != T_NUM) {
            if (n)
                return 0; /* words after numbers: not a row */
            continue;
        }
        if (n >= max)
            return 0;
        nums[n++] = t;
    }
    return n;
}

/* A header of labels over rows of numbers:
 *   QTY   VOLTS  PH  HZ  RLA   LRA   FLA  HP
 *   COMPRESSOR 1 208-230 1 60 16.5 92.7
 *   FAN MOTOR  1 208-230 1 60           1.2  1/3
 * A label repeated in another language ("VOLTAGE / TENSION") is one
 * column; words before the first label may be a column ("QTY") or the name
 * of the rows ("UNIT"). A row with as many numbers as columns maps one to
 * one; with more, from the right ("Indoor 1 208/230 3 60"); with fewer,
 * from the left. Every field of a row must read, or the row is not read. */
static void read_table(struct ctx *c, size_t li)
{
    const struct line *h = &c->lines[li];
    int cols[32], ncols = 0, nfields = 0, lead = 0, seen = 0;

    for (size_t i = h->tok; i < h->tok + h->ntok; i++) {
        const struct token *t = &c->toks[i];
        int f = t->kind == T_LABEL ? labels[t->label].field : -1;

        if (t->kind == T_NUM || t->kind == T_FOREIGN || ncols >= 32)
            return;
        if (f == F_QUAL || is_mark(c, t) || (table_field(f) && ncols && cols[ncols - 1] == f))
            continue;
        if (table_field(f)) {
            if (seen & (1 << f))
                return;
            seen |= 1 << f;
            nfields++;
        } else if (!nfields) {
            lead++;
        }
        cols[ncols++] = f;
    }
    if (nfields < 2 || ncols - nfields - lead > 4)
        return;
    for (size_t lj = li + 1, rows = 0; lj < c->n_lines && rows < 4; lj++) {
        struct token *nums[64];
        size_t n;

        if (!c->lines[lj].ntok)
            continue;
        n = row_numbers(c, &c->lines[lj], nums, 64);
        if (n < 2)
            break;
        rows++;
        if (n == (size_t)ncols)
            table_row(c, cols, ncols, 0, nums, n);
        else if (n == (size_t)(ncols - lead))
            table_row(c, cols, ncols, lead, nums, n);
        else if (n > (size_t)ncols)
            table_row(c, cols, ncols, 0, nums + (n - (size_t)ncols), (size_t)ncols);
        else if (!table_row(c, cols, ncols, 0, nums, n))
            table_row(c, cols, ncols, lead, nums, n);
    }
}

/* A row of labels over a row of their values, two-column plates:
 *   CAT. NO.        S/N
 *   5KE711JG0018L   GX 02535
 * Each label reads its value in turn from the row below; labels Rivet
 * ignores skip a word (and its unit: "461 LBS"). The row must be used up
 * exactly, or nothing is read. */
static void read_pairs(struct ctx *c, size_t li)
{
    const struct line *h = &c->lines[li], *r = NULL;
    struct token *lab[8], *end;
    char vals[8][NP_VALUE_MAX];
    size_t vs[8], ve[8], k = 0;
    int nfields = 0;

    for (size_t i = h->tok; i < h->tok + h->ntok; i++) {
        struct token *t = &c->toks[i];
        int f = t->kind == T_LABEL ? labels[t->label].field : -1;

        if (f == F_QUAL)
            continue;
        if (f < 0 || f == NP_MANUFACTURER || f == F_VPH || k >= 8 || t->glued ||
            (k && labels[lab[k - 1]->label].field == f))
            return;
        nfields += f < NP_FIELD_COUNT;
        lab[k++] = t;
    }
    if (k < 2 || !nfields)
        return;
    for (size_t lj = li + 1; lj < c->n_lines && !r; lj++)
        if (c->lines[lj].ntok)
            r = &c->lines[lj];
    if (!r)
        return;
    struct token *v = &c->toks[r->tok];

    end = c->toks + r->tok + r->ntok;
    for (size_t j = 0; j < k; j++) {
        int f = labels[lab[j]->label].field;
        size_t e;

        vals[j][0] = '\0';
        if (v >= end || (v->kind == T_LABEL && !is_symbol(&labels[v->label])))
            return;
        vs[j] = v->start;
        if (f >= NP_VOLTS && f <= NP_PHASE) {
            bool fuzzy;

            if (v->kind != T_NUM || v->foreign ||
                !num_value(c, v, f, vals[j], sizeof(vals[j]), &fuzzy))
                return;
            e = v->end;
        } else if (f < NP_FIELD_COUNT) {
            e = pattern_value(c, v, f, vals[j], sizeof(vals[j]));
            if (!e || !vals[j][0])
                return;
        } else {
            e = v->end; /* a value Rivet does not read */
        }
        ve[j] = e;
        while (v < end && v->start < e)
            v++;
        while (v < end && (v->kind == T_FOREIGN ||
                           (v->kind == T_LABEL && labels[v->label].field == f && v->glued)))
            v++; /* its unit: "91.7%", "40°C" */
    }
    if (v != end)
        return;
    for (size_t j = 0; j < k; j++) {
        lab[j]->done = true;
        if (vals[j][0])
            offer(c, labels[lab[j]->label].field, vals[j], FIT_TABLE, vs[j], ve[j]);
    }
    claim(c, (size_t)(r - c->lines), r->start, r->end, -1);
}

/* ---- the manufacturer ---- */

/* Whether a short or common brand at buf[s, e) reads as a manufacturer:
 * followed by a company word, or (nearly) alone on its line like a logo.
 * "ABB" and "WEG" then are sure (logo), "Lincoln" and "DELTA" are not;
 * anywhere else, such a word is not taken: "CONNECT IN DELTA", a random
 * "ABB" in noise. */
static float weak_fit(struct ctx *c, size_t li, size_t s, size_t e, bool sure)
{
    const struct line *l = &c->lines[li];
    size_t others = 0;

    if (match(c, re.after_brand, e, l->end, true) > 0)
        return sure ? 0.95f : 0.8f;
    for (size_t i = l->tok; i < l->tok + l->ntok; i++)
        if (c->toks[i].end <= s || c->toks[i].start >= e)
            others++;
    if (sure && ((l->ntok && c->toks[l->tok].start == s) ||
                 (l->ntok > 1 && c->toks[l->tok + 1].start == s) || others <= 4))
        return 0.9f; /* a logo near the start of a short line: "WEG EQUIPAMENTOS ..." */
    return others > 2 || sure ? 0 : others <= 1 ? 0.55f : 0;
}

static size_t line_of(const struct ctx *c, size_t pos)
{
    size_t lo = 0, hi = c->n_lines;

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        if (c->lines[mid].start <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* A parent company in a tag line: "A Member of the ABB Group", "a xylem
 * brand", "by Johnson Controls". */
static bool tagline(struct ctx *c, size_t li, size_t s, size_t e)
{
    const struct line *l = &c->lines[li];
    size_t b = s;

    while (b > l->start && c->buf[b - 1] == ' ')
        b--;
    if (b > l->start && match(c, re.tag_before, l->start, b, false) > 0 && ov(c, 1) == b)
        return true;
    return match(c, re.tag_after, e, l->end, true) > 0;
}

/* Names from the alias table anywhere in the text: exact first, then with
 * OCR confusions, then behind a logo's emblem on a line of its own, each
 * only when the one before found nothing. */
static void read_aliases(struct ctx *c)
{
    size_t limit = c->n_lines ? c->lines[c->n_lines - 1].end : 0;

    for (int f = 0; f < 3 && !c->best[NP_MANUFACTURER].set; f++) {
        size_t pos = 0;

        while (pos < limit && match(c, re.alias[f], pos, limit, false) > 0) {
            size_t s = ov(c, 0), e = ov(c, 1);
            int i = mark_index(c);
            float fit = f == 0 ? 0.95f : f == 1 ? FIT_FUZZY : FIT_SHAPE;

            pos = e > s ? e : s + 1;
            if (i < 0 || (size_t)i >= N_ALIASES)
                continue;
            if (f == 2 && c->lines[line_of(c, s)].ntok > 2)
                continue; /* a logo has a line to itself */
            if (aliases[i].flags & (A_WEAK | A_CS))
                fit = weak_fit(c, line_of(c, s), s, e, !(aliases[i].flags & A_WEAK));
            else if (tagline(c, line_of(c, s), s, e))
                fit = 0; /* the parent company: Baldor plates are not ABB's */
            if (fit > 0)
                offer(c, NP_MANUFACTURER, aliases[i].name, fit, s, e);
        }
    }
}

/* Whether a line reads as text: letters, digits and spaces, not noise. */
static bool clean_line(const struct ctx *c, const struct line *l)
{
    size_t good = 0;

    for (size_t i = l->start; i < l->end; i++) {
        unsigned char ch = (unsigned char)c->buf[i];

        good += is_alnum(ch) || ch == ' ' || ch >= 0x80 || ch == ',' || ch == '.';
    }
    return good * 10 >= (l->end - l->start) * 9;
}

/* A company line: "Northwind Climate Systems, Inc.", "ACME PUMPS INC." */
static void read_company(struct ctx *c, size_t li)
{
    const struct line *l = &c->lines[li];
    char name[NP_VALUE_MAX];
    size_t s, e;

    if (match(c, re.company, l->start, l->end, false) > 0 ||
        match(c, re.company_electric, l->start, l->end, false) > 0) {
        s = ov(c, 2);
        e = ov(c, 3);
    } else {
        return;
    }
    while (s < e && match(c, re.stopword, s, e, true) > 0) {
        if (strncasecmp(c->buf + s, "THE ", 4))
            return; /* "A United Technologies Company", "DIV. OF ...": not the maker */
        s = ov(c, 1);
    }
    if (!memchr(c->buf + s, ' ', e - s) || !clean_line(c, l) ||
        match(c, re.parent, l->start, s, false) > 0)
        return; /* a suffix alone is no name; noise is no company; nor a parent */
    if (name_value(c, s, e, name, sizeof(name)))
        offer(c, NP_MANUFACTURER, name, FIT_SHAPE, s, e);
}

/* ---- shapes without labels ---- */

static void read_shapes(struct ctx *c)
{
    size_t limit = c->n_lines ? c->lines[c->n_lines - 1].end : 0, pos = 0;
    char val[NP_VALUE_MAX];

    while (!c->best[NP_ENCLOSURE].set && pos < limit &&
           match(c, re.encl_bare, pos, limit, false) > 0) {
        char raw[NP_VALUE_MAX];

        norm_code(c->buf + ov(c, 2), ov(c, 3) - ov(c, 2), raw, sizeof(raw));
        norm_encl(c->buf + ov(c, 2), ov(c, 3) - ov(c, 2), val, sizeof(val));
        offer(c, NP_ENCLOSURE, val, strcmp(raw, val) ? FIT_FUZZY * FIT_NUM : FIT_FUZZY, ov(c, 0),
              ov(c, 1));
        pos = ov(c, 1);
    }
    pos = 0;
    while (pos < limit && match(c, re.vph_bare, pos, limit, false) > 0) {
        size_t s = ov(c, 0), e = ov(c, 1);

        for (int g = 1; g <= 3; g++) {
            snprintf(val, sizeof(val), "%.*s", (int)(ov(c, 2 * g + 1) - ov(c, 2 * g)),
                     c->buf + ov(c, 2 * g));
            offer(c, g == 1 ? NP_VOLTS : g == 2 ? NP_PHASE : NP_HZ, val, FIT_SHAPE, s, e);
        }
        pos = e;
    }
}

/* A motor turns at most at its synchronous speed with two poles, 60 x Hz:
 * "RPM 11745" on a 60 Hz plate is a box edge read as a 1. */
static void check_speed(struct ctx *c)
{
    struct cand *rpm = &c->best[NP_RPM], *hz = &c->best[NP_HZ];
    char *end;
    double r, h;

    if (!rpm->set || !hz->set)
        return;
    r = strtod(rpm->value, &end);
    if (*end)
        return; /* a list: "1440/28" */
    h = strtod(hz->value, &end);
    if (*end)
        return;
    if (r > 60 * h * 1.01)
        rpm->set = false;
}

/* ---- the interface ---- */

int np_extract(const char *text, size_t len, const struct ocr_word *words, size_t n_words,
               struct nameplate *out)
{
    struct ctx c = {.words = words, .n_words = n_words};
    int r;

    memset(out, 0, sizeof(*out));
    pthread_once(&re_once, re_init);
    if (!re.ok)
        return -ENOMEM;
    if (!text)
        len = 0;
    r = clean(&c, text ? text : "", len);
    if (r < 0)
        goto out;
    c.md = pcre2_match_data_create(re.ovec, NULL);
    if (!c.md) {
        r = -ENOMEM;
        goto out;
    }
    r = lex(&c);
    if (r < 0)
        goto out;
    read_vertical(&c);
    for (size_t li = 0; li < c.n_lines; li++)
        read_pairs(&c, li);
    read_labels(&c);
    for (size_t li = 0; li < c.n_lines; li++)
        read_table(&c, li);
    read_shapes(&c);
    read_aliases(&c);
    for (size_t li = 0; li < c.n_lines && !c.best[NP_MANUFACTURER].set; li++)
        read_company(&c, li);
    check_speed(&c);
    for (int f = 0; f < NP_FIELD_COUNT; f++)
        if (c.best[f].set)
            np_set(out, (enum np_field)f, c.best[f].value, c.best[f].score, NP_SRC_OCR);
    np_score(out);
    r = 0;
out:
    pcre2_match_data_free(c.md);
    free(c.toks);
    free(c.lines);
    free(c.map);
    free(c.buf);
    return r;
}

/* Lower-case ASCII letters and digits of name, accented Latin letters as
 * their base letter; everything else dropped. */
static void canon_key(const char *name, char *out, size_t n)
{
    static const char latin[] = "aaaaaaaceeeeiiiidnooooo/ouuuuyty"; /* U+00E0.. */
    size_t k = 0;

    for (const unsigned char *s = (const unsigned char *)name; *s && k + 1 < n; s++) {
        if (is_alnum(*s)) {
            out[k++] = (char)tolower(*s);
        } else if (*s == 0xC3 && s[1] >= 0x80 && s[1] <= 0xBF) {
            char ch = s[1] == 0x9F ? 's' : latin[(s[1] & 0x1F)]; /* ß */

            if (isalpha((unsigned char)ch))
                out[k++] = ch;
            s++;
        }
    }
    out[k] = '\0';
}

const char *np_manufacturer_canonical(const char *name)
{
    char key[64], ak[64];

    if (!name)
        return NULL;
    canon_key(name, key, sizeof(key));
    if (!key[0] || strnlen(name, 256) > 200)
        return NULL;
    for (size_t i = 0; i < N_ALIASES; i++) {
        canon_key(aliases[i].alias, ak, sizeof(ak));
        if (!strcmp(key, ak))
            return aliases[i].name;
        canon_key(aliases[i].name, ak, sizeof(ak));
        if (!strcmp(key, ak))
            return aliases[i].name;
    }
    return NULL;
}
