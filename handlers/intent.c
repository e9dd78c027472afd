/* Plain-word intents: see intent.h.
 *
 * The text is first normalised into a copy where curly and angle quotes
 * become ASCII quotes, a few abbreviations are expanded ("mtr" -> "motor")
 * and a word within a small edit distance of a key word is replaced by it
 * ("leakign" -> "leaking"); a byte map leads every byte of the copy back to
 * the text as typed, so the machine and location are returned as typed.
 * The patterns run on the copy, case-insensitive, UTF-8 aware. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <pcre2.h>

#include "arena.h"
#include "intent.h"
#include "text.h"

#define MAX_TEXT 4096
#define MAX_TITLE 200
#define MAX_WORD 64

/* ---- key words ---- */

/* Words whose typos are repaired. Only words of 5 letters or more are
 * compared, with a distance of 1 (2 from 8 letters), and a typo must keep
 * the first letter: "leakign" is "leaking", "fired" stays "fired". */
static const char *const keywords[] = {
    "leaking",
    "leaks",
    "leaky",
    "stopped",
    "working",
    "running",
    "starting",
    "broken",
    "tripped",
    "tripping",
    "overheating",
    "overheated",
    "smoke",
    "smoking",
    "sparks",
    "sparking",
    "burning",
    "noise",
    "noisy",
    "vibrating",
    "vibration",
    "vibrates",
    "squeaking",
    "squealing",
    "grinding",
    "rattling",
    "knocking",
    "jammed",
    "blocked",
    "clogged",
    "fault",
    "faulty",
    "error",
    "failed",
    "failure",
    "alarm",
    "alarms",
    "alerts",
    "status",
    "update",
    "compressor",
    "conveyor",
    "motor",
    "boiler",
    "chiller",
    "valve",
    "mixer",
    "robot",
    "machine",
    "inverter",
    "blower",
    "extruder",
    "generator",
    "forklift",
    "palletizer",
    "labeler",
    "wrapper",
    "filler",
    "heater",
    "cooler",
    "elevator",
    "orders",
    "order",
    "assigned",
    "pending",
    "completed",
    "finished",
    "fixed",
    "repaired",
    "please",
    "undicht",
    "kaputt",
    "defekt",
    "ausgefallen",
    "stoerung",
    "funktioniert",
    "averiado",
    "averiada",
    "funciona",
    "arranca",
    "ruido",
    "compresor",
    "transportador",
    "bomba",
    "pompe",
    "fuite",
    "panne",
    "compresseur",
    "convoyeur",
    "moteur",
    "alarme",
    "alarmes",
    "alarmas",
    "ordenes",
    "auftraege",
    "troubleshoot",
    "injured",
    "injury",
    "bleeding",
    "flames",
    "electric",
    "pressure",
    "temperature",
    "outstanding",
    "problem",
    "trouble",
    "reset",
    "manual",
    "anything",
    /* near other key words but words of their own: kept as typed */
    "filter",
    "fired",
    "mixed",
    "transportadora",
    "status",
    "stopper",
    "leaning",
    "motors",
    "alarmed",
    "bombas",
    "please",
};
#define N_KEYWORDS (sizeof(keywords) / sizeof(keywords[0]))

/* Abbreviations expanded before matching (whole words, any case). */
static const struct {
    const char *abbr, *full;
} abbrevs[] = {
    {"mtr", "motor"},     {"pmp", "pump"},      {"comp", "compressor"}, {"compr", "compressor"},
    {"conv", "conveyor"}, {"eqp", "equipment"}, {"equip", "equipment"}, {"pls", "please"},
    {"plz", "please"},    {"wat", "what"},      {"wht", "what"},        {"stat", "status"},
    {"nt", "not"},        {"thx", "thanks"},    {"u", "you"},           {"r", "are"},
};
#define N_ABBREVS (sizeof(abbrevs) / sizeof(abbrevs[0]))

/* ---- patterns ---- */

/* A work-order word: "work order(s)", "wo(s)", "w/o", "job(s)", "tasks",
 * "tickets", "Aufträge", "órdenes (de trabajo)", "ordres (de travail)". */
#define WO_WORD                                                                                    \
    "(?:work\\s*-?\\s*orders?|w\\.?o\\.?s?|w/os?|jobs?|tasks?|tickets?|orders?|"                   \
    "(?:arbeits)?auftr(?:ä|ae|a)ge|aufträgen|(?:ó|o)rdene?s?(?:\\s+de\\s+trabajo)?|tareas|"     \
    "trabajos|ordres(?:\\s+de\\s+travail)?|bons(?:\\s+de\\s+travail)?|t(?:â|a)ches|"              \
    "interventions|ordens(?:\\s+de\\s+servi(?:ç|c)o)?)"

/* Machine nouns (English, German, Spanish, French, Portuguese). */
#define EQ_NOUN                                                                                     \
    "(?:pumps?|motors?|compressors?|conveyors?(?:\\s+belt)?|fans?|press(?:es)?|boilers?|"           \
    "chillers?|valves?|mixers?|robots?|machines?|drives?|vfds?|inverters?|blowers?|ovens?|"         \
    "kilns?|extruders?|cranes?|forklifts?|generators?|genset|tanks?|cnc|lathes?|mills?|saws?|"      \
    "packers?|fillers?|labell?ers?|palletizers?|wrappers?|cooling\\s+towers?|hvac|ahu|"             \
    "elevators?|lifts?|heaters?|coolers?|turbines?|welders?|welding\\s+robot|grinders?|"            \
    "shredders?|separators?|centrifuges?|dryers?|feeders?|hoists?|equipment|unit|"                  \
    "pumpe|verdichter|kompressor|förderband|foerderband|lüfter|luefter|ventilator|presse|kessel|" \
    "ventil|antrieb|umrichter|maschine|anlage|mischer|l(?:ü|ue|u)ftung|k(?:ü|ue|u)hlung|bomba|"   \
    "compresor|cinta(?:\\s+transportadora)"                                                         \
    "?|"                                                                                            \
    "transportador|ventilador|prensa|caldera|v(?:á|a)lvula|m(?:á|a)quina|mezcladora|horno|"       \
    "pompe|compresseur|convoyeur|tapis(?:\\s+roulant)?|chaudi(?:è|e)re|vanne|moteur|"              \
    "m(?:é|e)langeur|four|esteira|caldeira|misturador)"

/* Words before a machine noun that belong to its name. */
#define EQ_ADJ                                                                                     \
    "(?:main|big|small|old|new|north|south|east|west|left|right|upper|lower|top|bottom|"           \
    "hydraulic|air|vacuum|cooling|feed|water|oil|hot|cold|first|second|third|back|front|spare|"    \
    "backup|standby|primary|secondary|booster|transfer|circulation|sump|fire|exhaust|supply|"      \
    "return|screw|centrifugal|haupt|alte|neue|große|grosse|kleine|principal|grande|nueva|vieja|"  \
    "nouveau|nouvelle|vieux|vieille|petit|petite|screw|rotary|belt|packaging|packing|bottle|"      \
    "filling|spindle|dust|steam|hydraulik)"

#define BRAND                                                                                      \
    "(?:siemens|abb|danfoss|schneider|allen[- ]bradley|fanuc|kuka|atlas\\s+copco|grundfos|ksb|"    \
    "sew|yaskawa|mitsubishi|omron|festo|kaeser|bosch|haas|mazak|trumpf|krones|weg|baldor|"         \
    "lenze|nord|vacon|emerson|rockwell|beckhoff|ingersoll[- ]rand|sullair|xylem|flygt|wilo|"       \
    "lincoln|miller|dmg|okuma|doosan|heidenhain|sick|pilz|toyota|linde|jungheinrich|caterpillar|"  \
    "cat|cummins|carrier|trane|daikin|york)"

/* A number after a machine noun: "3", "#3", "nr. 3", "n°3", "P-101", "B". */
#define TAG "(?:[a-z]{1,4}\\d?-?\\d{1,5}[a-z]{0,3})"
#define NUMSPEC                                                                                    \
    "(?:(?:\\s*(?:#|no\\.?|nr\\.?|n[°º]|num(?:ber|ero|éro)?\\.?|nummer)\\s*|\\s+|-)?"           \
    "(?:\\d+[a-z]?\\b|" TAG "\\b|(?-i:[A-Z])\\b))"

enum re_id {
    RE_DONE,
    RE_MY,
    RE_OPEN,
    RE_QUESTION,
    RE_ALARMS,
    RE_STATE,
    RE_SYMPTOM,
    RE_CRITICAL,
    RE_HIGH,
    RE_LOW,
    RE_MINOR,
    RE_QUOTED,
    RE_SQUOTED,
    RE_MACHINE,
    RE_MODEL,
    RE_LOCATION,
    RE_WO,
    RE_EQ,
    RE_FAULT,
    RE_COUNT
};

static const char *const patterns[RE_COUNT] = {
    /* the whole message says the job is done */
    [RE_DONE] = "^\\W*(?:(?:it'?s|its|all|job|wo|work\\s+order|task|ist|es|c'est|est|está|esta|"
                "i|we|have|has|been|is|now|that'?s|thats|ok|okay)\\s+){0,3}"
                "(?:done|fixed|completed?|finished|closed|resolved|repaired|sorted|erledigt|fertig|"
                "repariert|behoben|gemacht|hecho|listo|lista|terminado|arreglado|reparado|resuelto|"
                "completado|fait|fini|termin(?:é|e)e?|r(?:é|e)par(?:é|e)e?|r(?:é|e)solu|feito|"
                "conclu(?:í|i)do|consertado|pronto)"
                "(?:\\s+(?:it|now|already|ya|jetzt|schon|déjà|deja|thanks|thank\\s+you|danke|"
                "gracias|merci|obrigado|ok|boss|all\\s+good))*[\\W_]*$|"
                "^\\W*(?:done|fixed|completed|finished|repaired|erledigt|fertig|repariert|hecho|"
                "listo|terminado|reparado|fait|fini|termin(?:é|e)|feito|pronto)\\s*[,.:;!-]",
    [RE_MY] =
        "\\b(?:my|mine|meine[nm]?|mis|mes|minhas|meus)\\s+(?:open\\s+|offenen?\\s+|"
        "pending\\s+|current\\s+)?" WO_WORD "\\b|\\bassigned\\s+to\\s+me\\b|"
        "\\bwhat(?:'?s|\\s+is|\\s+do\\s+i\\s+have)\\s+(?:on\\s+)?my\\s+(?:plate|list)|"
        "\\bwas\\s+(?:hab|habe)\\s+ich\\b|\\bmir\\s+zugewiesen|\\bqu(?:é|e)\\s+tengo\\b|"
        "\\basignad[oa]s?\\s+a\\s+m(?:í|i)|\\b(?:pending|open|anything|jobs?|tasks?)\\s+(?:\\w+\\s+"
        ")?for\\s+me\\b|"
        "\\bwhat\\s+" WO_WORD
        "\\s+(?:do|have|did)\\s+i\\b|\\bfor\\s+me\\s+today\\b|\\bm'(?:est|ont\\s+été)\\s+assign",
    [RE_OPEN] = "\\bwhat(?:'?s|\\s+is|\\s+are)\\s+(?:still\\s+|currently\\s+)?(?:open|pending|"
                "outstanding)\\b|\\b(?:open|pending|outstanding|offenen?|abiertas?|"
                "pendientes?|ouverts?|ouvertes|en\\s+cours|abertas?)\\s+" WO_WORD "\\b|"
                "\\b" WO_WORD "\\s+(?:(?:are|still|currently)\\s+)?(?:open|pending|offen|"
                "abiertas?|pendientes?|ouverts?|ouvertes|en\\s+cours|en\\s+attente|abertas?)\\b|"
                "\\bbacklog\\b|\\bwas\\s+ist\\s+(?:noch\\s+)?offen|"
                "\\bqu(?:é|e)\\s+(?:hay|est(?:á|a)|queda)\\s+(?:abierto|pendiente)|"
                "\\bqu'est-ce\\s+qui\\s+(?:est|reste)\\s+(?:ouvert|en\\s+cours)|"
                "\\banything\\s+(?:still\\s+)?open\\b|\\bopen\\s+(?:on|for|at)\\b|"
                "^\\W*(?:list|show)\\s+(?:all\\s+)?(?:open\\s+)?" WO_WORD "\\b",
    /* how-to and troubleshooting */
    [RE_QUESTION] =
        "^\\W*(?:how\\s+(?:do|to|can|should|would|does|long|often|much)|howto|hw\\s+(?:do|to)|"
        "wie\\s+(?:kann|mache|setze|stelle|wechsle|tausche|behebe|resette|geht\\s+das|bekomme|"
        "wird)|c(?:ó|o)mo\\s+(?:se|puedo|hago|reseteo|reinicio|cambio|quito|borro|arreglo)|"
        "comment\\s+(?:faire|on|je|r(?:é|e)initialiser|changer|remettre|r(?:é|e)armer)|"
        "why|warum|wieso|weshalb|por\\s*qu(?:é|e)|pourquoi|what\\s+(?:does|do|causes?|could|"
        "should|can|would)|what'?s\\s+the\\s+(?:meaning|cause|procedure|torque|setting|"
        "parameter|correct|right|normal|max|min|rated|recommended|best\\s+way)|"
        "(?:qu(?:é|e)\\s+)?significa|was\\s+bedeutet|que\\s+veut\\s+dire|que\\s+signifie|"
        "o\\s+que\\s+significa|como\\s+(?:fa(?:ç|c)o|resetar)|can\\s+(?:you|someone|anyone)\\s+"
        "(?:help|explain|tell)|any\\s+(?:idea|ideas|tips?|advice|clue)|what\\s+(?:oil|grease|fuse|"
        "part|size|type|kind|filter|belt|bearing|torque|setting|coolant|refrigerant)|"
        "where\\s+(?:is|are|do|can)\\s+(?:i\\s+find\\s+)?(?:the\\s+)?(?:\\w+\\s+)?(?:manual|"
        "setting|parameter|fuse|reset\\s+button|filter|grease\\s+point|breaker|datasheet))\\b|"
        "\\bhow\\s+(?:do|to|can|should)\\s+(?:i|we|you)?\\b|\\bmeaning\\s+of\\b|"
        "\\bwhat\\s+does\\b.*\\bmean\\b|\\btroubleshoot|\\bprocedure\\b|\\bstep\\s+by\\s+step|"
        "\\bbedeutet\\b|\\bsignifica\\b|\\bsignifie\\b|\\bveut\\s+dire\\b|\\bmanual\\b|"
        "\\bhandbuch\\b|\\bmanuel\\b|\\bhow\\s+to\\b|\\bwie\\s+(?:setze|stelle|quittiere|"
        "resette|behebe)\\b|\\bc(?:ó|o)mo\\s+(?:se\\s+)?(?:resete|reinici|quit|borr|cambi)|"
        "\\bcomment\\s+(?:on\\s+)?(?:r(?:é|e)initialise|acquitte|change|remet)",
    /* a list of alarms: plural, or asked for */
    [RE_ALARMS] =
        "\\b(?:alarms|alarmen|alarme|alarmes|alarmas|alerts|alertes|alertas|"
        "warnungen|st(?:ö|oe|o)rmeldungen|avisos)\\b|"
        "\\b(?:any|active|show|list|current|all|which|what|aktive|alle|welche|"
        "activas|actives|quelles|hay|ver|mostrar|montre|liste)\\s+(?:\\w+\\s+)?"
        "(?:alarms?|alarme?s?|alarmas?|alerts?|alertes?|alertas?)\\b|"
        "^\\W*(?:alarms?|alarme?|alarma|alerts?)\\W*$|"
        "\\b(?:alarms?|alarme?|alarmas?|alerts?)\\s+(?:list|overview|summary|liste|lista)\\b",
    [RE_STATE] =
        "\\b(?:status|state|estado|(?:é|e)tat|zustand|situaci(?:ó|o)n|situa(?:ç|c)(?:ã|a)o)\\b|"
        "^\\W*(?:is|are|was|ist|l(?:ä|ae|a)uft|est(?:á|a)|est-ce\\s+que|any\\s+news|"
        "any\\s+update|update\\s+on|news\\s+on|what'?s\\s+up\\s+with|what'?s\\s+happening|"
        "what'?s\\s+going\\s+on|what\\s+is\\s+going\\s+on|"
        "what\\s+happened|how'?s|how\\s+is|how\\s+are|wie\\s+(?:geht|l(?:ä|ae|a)uft|steht|ist)|"
        "where\\s+(?:is|are)|wo\\s+(?:ist|steht)|who\\s+is|when\\s+will|when\\s+is|"
        "c(?:ó|o)mo\\s+(?:est(?:á|a)|va)|funciona|fonctionne|marche|o(?:ù|u)\\s+en\\s+est|"
        "did\\s+(?:someone|anyone)|has\\s+(?:someone|anyone)|did|has)\\b|"
        "\\bstill\\s+(?:down|broken|stopped|open|running|waiting|leaking|out)\\b|"
        "\\b(?:fixed|repaired|running|back\\s+up|done|working)\\s+(?:yet|already|now)\\W*\\?|"
        "\\bwhen\\s+will\\b|\\bwho\\s+is\\s+(?:on|working)\\b|\\bany\\s+(?:news|update)\\b",
    /* a symptom: a fault is being reported */
    [RE_SYMPTOM] =
        "\\b(?:leak(?:s|ing|ed)?|leaky|dripping|drips|spraying|(?:is|are|went|goes|gone|broke)"
        "\\s+down|(?<!shut\\s)(?<!slow\\s)(?<!up\\s)(?<!and\\s)down\\b(?!\\s+(?:to|the|from|on\\s+"
        "the))|stopped|stops|stop\\s+working|not\\s+(?:working|running|starting|turning|moving|"
        "pumping|cooling|heating|responding|closing|opening|building\\s+pressure|\\w+ing)|"
        "(?:doesn'?t|does\\s+not|won'?t|wont|can'?t|cant|isn'?t|isnt|aint|will\\s+not)\\s+"
        "(?:work|working|start|run|running|turn(?:\\s+on)?|stop|open|close|move|cool|heat|"
        "pump|reset|come\\s+on|power\\s+on)|broken|broke|busted|dead|tripp(?:ed|ing)|trips|"
        "overheat(?:ing|ed|s)?|over\\s*heating|(?:too|very|running|getting|really|super)\\s+hot|"
        "smok(?:e|ing|es|ey|y)|fire|flames?|on\\s+fire|burning|burnt|burned|sparks?|sparking|"
        "noise|noises|noisy|loud|squeal(?:ing|s)?|squeak(?:ing|y|s)?|grinding|rattl(?:e|ing|es)|"
        "knocking|banging|humming|whining|vibrat(?:ing|ion|ions|es|e)|shaking|jammed|jams|jam|"
        "stuck|blocked|clogged|burnt|burned|faulted|faulty|fault|faults|error|errors|alarm|"
        "alarming|"
        "failed|failure|failing|cracked|crack|loose|worn|(?:low|high|no|lost)\\s+(?:pressure|"
        "oil|level|flow|power|air|water|output|vacuum|temp(?:erature)?)|pressure\\s+drop|"
        "blown|shorted|smells?|injur(?:y|ed)|hurt|bleeding|electric\\s+shock|"
        "slipping|misaligned|off\\s+track|overload(?:ed)?|cavitat(?:ing|ion)|out\\s+of\\s+order|"
        "problem|problems|issue|issues|trouble|tripped|frozen|iced\\s+up|"
        "(?:light|lamp|bulb|lights)\\s+(?:is\\s+|are\\s+)?out|"
        "undicht|leckt?|tropft|l(?:ä|ae|a)uft\\s+nicht(?:\\s+mehr)?|steht(?:\\s+still)?|"
        "stillstand|ausgefallen|ausfall|defekt|kaputt|st(?:ö|oe|o)rung|fehler|rauch|raucht|"
        "qualmt|feuer|brennt|brand|funken|(?:ü|ue|u)berhitzt|hei(?:ß|ss)|laut|ger(?:ä|ae|a)usch|"
        "ger(?:ä|ae|a)usche|quietscht|klappert|vibriert|blockiert|verstopft|klemmt|verletzt|"
        "startet\\s+nicht|geht\\s+nicht|funktioniert\\s+nicht|ausgel(?:ö|oe|o)st|"
        "fuga|gotea|goteando|pierde\\s+aceite|no\\s+(?:funciona|arranca|enciende|gira|"
        "prende|anda|bombea|enfr(?:í|i)a|calienta|seca|sella|cierra|abre)|pierde|parad[oa]|se\\s+(?"
        ":par(?:ó|o)|detuvo|trab(?:ó|o))|"
        "averiad[oa]|aver(?:í|i)a|rot[oa]|falla|fallo|humo|fuego|chispas|quemad[oa]|ruido|"
        "ruidos[oa]|vibra|vibraci(?:ó|o)n|atascad[oa]|bloquead[oa]|sobrecalentad[oa]|"
        "caliente|disparad[oa]|herid[oa]|da(?:ñ|n)ad[oa]|"
        "fuite|fuit|en\\s+panne|panne|ne\\s+(?:marche|fonctionne|d(?:é|e)marre|tourne)\\s+"
        "(?:pas|plus)|arr(?:ê|e)t(?:é|e)e?|bloqu(?:é|e)e?|cass(?:é|e)e?|hs|fum(?:é|e)e|feu|"
        "(?:é|e)tincelles|br(?:û|u)l(?:é|e)e?|bruit|bruyant|vibre|surchauffe|chaud|"
        "disjonct(?:é|e)e?|d(?:é|e)faut|erreur|bless(?:é|e)e?|coinc(?:é|e)e?|"
        "vazando|vazamento|quebrad[oa]|n(?:ã|a)o\\s+funciona|fuma(?:ç|c)a|barulho|"
        "avariad[oa]|travad[oa]|perde|perdita|guasto|rotto|fermo|non\\s+funziona)\\b",
    [RE_CRITICAL] =
        "\\b(?:smok(?:e|ing|es|ey|y)|fire|flames?|burning|sparks?|sparking|injur(?:y|ed)|"
        "hurt|bleeding|explo(?:sion|ded)|burnt|burned|burning\\s+smell|smells?\\s+(?:of\\s+)?"
        "burn\\w*|electric\\s+shock|shock|gas\\s+leak|ammonia|"
        "rauch|raucht|qualmt|feuer|brennt|brand|funken|verletzt|explosion|humo|fuego|chispas|"
        "herid[oa]|incendio|fum(?:é|e)e|feu|(?:é|e)tincelles|bless(?:é|e)e?|incendie|"
        "fuma(?:ç|c)a|inc(?:ê|e)ndio|ferido)\\b",
    [RE_HIGH] =
        "\\b(?:leak(?:s|ing|ed)?|leaky|spraying|down|stopped|stops|stop\\s+working|not\\s+"
        "(?:working|running|starting|turning|moving|pumping|cooling|heating|responding|"
        "building\\s+pressure)|(?:doesn'?t|does\\s+not|won'?t|wont|can'?t|cant|isn'?t|isnt|"
        "will\\s+not)\\s+(?:work|working|start|run|running|turn|stop|move|cool|heat|pump|come|"
        "power)|broken|broke|busted|dead|tripp(?:ed|ing)|trips|overheat(?:ing|ed|s)?|"
        "over\\s*heating|(?:too|very|running|getting|really|super)\\s+hot|jammed|jams?|stuck|"
        "blocked|failed|failure|(?:no|lost)\\s+(?:pressure|power|air|flow|vacuum|output)|"
        "blown|out\\s+of\\s+order|frozen|undicht|leckt?|l(?:ä|ae|a)uft\\s+nicht|steht|"
        "stillstand|ausgefallen|ausfall|defekt|kaputt|(?:ü|ue|u)berhitzt|blockiert|klemmt|"
        "st(?:ö|oe|o)rung|"
        "startet\\s+nicht|geht\\s+nicht|funktioniert\\s+nicht|ausgel(?:ö|oe|o)st|"
        "fuga|no\\s+(?:funciona|arranca|enciende|gira|prende|anda|bombea|calienta|enfr(?:í|i)a)|"
        "parad[oa]|"
        "se\\s+(?:par(?:ó|o)|detuvo|trab(?:ó|o))|averiad[oa]|aver(?:í|i)a|rot[oa]|atascad[oa]|"
        "sobrecalentad[oa]|disparad[oa]|fuite|fuit|en\\s+panne|panne|ne\\s+(?:marche|"
        "fonctionne|d(?:é|e)marre|tourne)\\s+(?:pas|plus)|arr(?:ê|e)t(?:é|e)e?|cass(?:é|e)e?|"
        "hs|surchauffe|disjonct(?:é|e)e?|coinc(?:é|e)e?|vazando|vazamento|quebrad[oa]|"
        "n(?:ã|a)o\\s+funciona|avariad[oa]|travad[oa])\\b",
    [RE_LOW] = "\\b(?:noise|noises|noisy|squeal(?:ing|s)?|squeak(?:ing|y|s)?|rattl(?:e|ing|es)|"
               "humming|whining|cosmetic|loose|dirty|paint|lamp|bulb|light\\s+out|label|"
               "ger(?:ä|ae|a)usch|ger(?:ä|ae|a)usche|quietscht|klappert|ruido|ruidos[oa]|bruit|"
               "bruyant|barulho)\\b",
    /* a qualifier that lowers the priority by one step */
    [RE_MINOR] = "\\b(?:minor|small|slight(?:ly)?|little|a\\s+bit|bit\\s+of|not\\s+urgent|"
                 "no\\s+rush|low\\s+priority|when\\s+you\\s+(?:can|have\\s+time)|leicht|"
                 "etwas|kleine?s?|peque(?:ñ|n)[oa]|poco|l(?:é|e)ger|l(?:é|e)g(?:è|e)re|petite?|"
                 "pequen[oa])\\b",
    /* quoted names: "…", '…' (not an apostrophe) */
    [RE_QUOTED] = "\"\\s*([^\"]{1,80}?)\\s*\"",
    [RE_SQUOTED] = "(?<![\\w])'\\s*([^']{2,60}?)\\s*'(?![\\w])",
    [RE_MACHINE] = "(?<![\\w-])((?:" EQ_ADJ "\\s+){0,2}(?:" BRAND "\\s+)?" EQ_NOUN "(?:" NUMSPEC
                   ")?(?:\\s+" BRAND ")?)(?![\\w-])",
    /* a model or a tag: "G120", "Siemens G120C", "P-101", "S7-1200" */
    [RE_MODEL] = "(?<![\\w-])((?:" BRAND "\\s+)?(?:[a-z]{1,4}\\d?-?\\d{2,5}[a-z]{0,3}))(?![\\w-])",
    [RE_LOCATION] =
        "(?<![\\w-])((?:line|hall|bay|area|zone|building|bldg|floor|room|cell|station|"
        "workshop|plant|linie|halle|bereich|geb(?:ä|ae|a)ude|werk|raum|l(?:í|i)nea|nave|zona|"
        "sala|planta|ligne|atelier|b(?:â|a)timent|salle|hangar|linha|galp(?:ã|a)o|setor|"
        "sector|secteur|sektor)\\s*(?:#|no\\.?|nr\\.?|n[°º])?\\s*(?:\\d+[a-z]?|(?-i:[A-Z]))"
        ")(?![\\w-])",
    [RE_WO] = "(?<![\\w])(?:wo|w/o)\\s*[-# ]?\\s*(\\d{4})\\s*-?\\s*(\\d{1,6})(?!\\w)",
    [RE_EQ] = "(?<![\\w])(?:eq|eqp|equipment)\\s*[-# ]?\\s*(\\d{4})\\s*-?\\s*(\\d{1,6})(?!\\w)",
    [RE_FAULT] = "(?:\\b(?:fault|error|code|alarm|fehler(?:code)?|st(?:ö|oe|o)rung|falla|fallo|"
                 "c(?:ó|o)digo|d(?:é|e)faut|erreur|alarme|alarma)\\s*(?:code\\s*)?[:#]?\\s*"
                 "((?-i:[A-Z]{1,3})-?\\d{1,5}|[a-z]{1,2}-?\\d{2,5}|\\d{2,5})\\b)|"
                 "(?<![\\w-])([fe]-?\\d{3,5}|(?-i:[FEA])-\\d{2,5}|err-?\\d{1,4})(?![\\w-])",
};

static struct {
    pcre2_code *re[RE_COUNT];
    uint32_t ovec; /* the most capture pairs any pattern needs */
    bool ok;
} re;
static pthread_once_t re_once = PTHREAD_ONCE_INIT;

/* Compiled once; the codes live for the process (static storage). */
static void re_init(void)
{
    uint32_t opts = PCRE2_CASELESS | PCRE2_UTF | PCRE2_UCP;

    for (int i = 0; i < RE_COUNT; i++) {
        PCRE2_SIZE erroff;
        uint32_t n = 0;
        int err;

        re.re[i] = pcre2_compile((PCRE2_SPTR)patterns[i], PCRE2_ZERO_TERMINATED, opts, &err,
                                 &erroff, NULL);
        if (!re.re[i])
            return;
        pcre2_jit_compile(re.re[i], PCRE2_JIT_COMPLETE); /* fine if unavailable */
        pcre2_pattern_info(re.re[i], PCRE2_INFO_CAPTURECOUNT, &n);
        if (n + 1 > re.ovec)
            re.ovec = n + 1;
    }
    re.ok = true;
}

/* ---- normalised text ---- */

struct norm {
    const char *orig; /* the text as typed (borrowed) */
    char *s;          /* the normalised copy, NUL-terminated */
    size_t len;
    size_t *from, *to; /* s[i] comes from orig[from[i]..to[i]) */
    size_t cap;
};

static void put(struct norm *n, const char *p, size_t k, size_t from, size_t to)
{
    for (size_t i = 0; i < k && n->len < n->cap; i++) {
        n->s[n->len] = p[i];
        n->from[n->len] = from;
        n->to[n->len] = to;
        n->len++;
    }
}

static bool is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/* A quote or a space written as a multi-byte character: its ASCII stand-in
 * and its length in bytes, or 0. */
static size_t punct(const unsigned char *p, size_t left, char *ascii)
{
    if (left >= 3 && p[0] == 0xE2 && p[1] == 0x80) {
        if (p[2] >= 0x9C && p[2] <= 0x9F) { /* “ ” „ ‟ */
            *ascii = '"';
            return 3;
        }
        if (p[2] >= 0x98 && p[2] <= 0x9B) { /* ‘ ’ ‚ ‛ */
            *ascii = '\'';
            return 3;
        }
        if (p[2] == 0x93 || p[2] == 0x94) { /* – — */
            *ascii = '-';
            return 3;
        }
        if (p[2] == 0xAF || p[2] == 0x89 || p[2] == 0x8A) { /* narrow, thin, hair spaces */
            *ascii = ' ';
            return 3;
        }
    }
    if (left >= 2 && p[0] == 0xC2 && (p[1] == 0xAB || p[1] == 0xBB)) { /* « » */
        *ascii = '"';
        return 2;
    }
    if (left >= 2 && p[0] == 0xC2 && p[1] == 0xA0) { /* no-break space */
        *ascii = ' ';
        return 2;
    }
    return 0;
}

static bool has_digit(const char *w, size_t k)
{
    for (size_t i = 0; i < k; i++)
        if (w[i] >= '0' && w[i] <= '9')
            return true;
    return false;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* True when a and b (same length) differ by one swap of neighbours
 * ("leakign", "alrams"), a typo Levenshtein counts twice. */
static bool swapped(const char *a, const char *b, size_t k)
{
    size_t i = 0;

    while (i < k && lower(a[i]) == lower(b[i]))
        i++;
    if (i + 1 >= k || lower(a[i]) != lower(b[i + 1]) || lower(a[i + 1]) != lower(b[i]))
        return false;
    for (i += 2; i < k; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

/* The replacement for the word w[0..k), or NULL to keep it. */
static const char *repair(const char *w, size_t k)
{
    char buf[MAX_WORD + 1];
    const char *best = NULL;
    int best_d = 3;

    if (k > MAX_WORD || has_digit(w, k))
        return NULL;
    memcpy(buf, w, k);
    buf[k] = '\0';
    for (size_t i = 0; i < N_ABBREVS; i++)
        if (strlen(abbrevs[i].abbr) == k && text_distance(buf, abbrevs[i].abbr) == 0)
            return abbrevs[i].full;
    if (k < 5)
        return NULL;
    for (size_t i = 0; i < N_KEYWORDS; i++) {
        size_t kl = strlen(keywords[i]);
        int d;

        if (lower(keywords[i][0]) != lower(buf[0]) || (kl > k ? kl - k : k - kl) > 2)
            continue;
        d = text_distance(buf, keywords[i]);
        if (d == 0)
            return NULL;
        if (d == 2 && kl == k && swapped(buf, keywords[i], k))
            d = 1;
        if (d < best_d && d <= (k >= 8 && kl >= 8 ? 2 : 1)) {
            best_d = d;
            best = keywords[i];
        }
    }
    return best;
}

static int normalise(struct arena *a, const char *text, size_t len, struct norm *n)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;

    n->orig = text;
    n->cap = len * 2 + 16;
    n->len = 0;
    n->s = arena_alloc(a, n->cap + 1);
    n->from = arena_alloc(a, n->cap * sizeof(size_t));
    n->to = arena_alloc(a, n->cap * sizeof(size_t));
    if (!n->s || !n->from || !n->to)
        return -ENOMEM;
    while (i < len) {
        char ascii;
        size_t k = punct(p + i, len - i, &ascii);

        if (k) {
            put(n, &ascii, 1, i, i + k);
            i += k;
        } else if (is_word_byte(p[i])) {
            size_t j = i;
            const char *rep;

            while (j < len && is_word_byte(p[j]) && !punct(p + j, len - j, &ascii))
                j++;
            rep = repair(text + i, j - i);
            if (rep)
                put(n, rep, strlen(rep), i, j);
            else
                for (size_t m = i; m < j; m++)
                    put(n, text + m, 1, m, m + 1);
            i = j;
        } else {
            put(n, text + i, 1, i, i + 1);
            i++;
        }
    }
    n->s[n->len] = '\0';
    return 0;
}

/* ---- matching ---- */

struct span {
    size_t s, e; /* in the normalised text */
};

/* Group g of the first match of pattern id from offset start: true and *sp. */
static bool find(enum re_id id, const struct norm *n, size_t start, int g, pcre2_match_data *md,
                 struct span *sp)
{
    PCRE2_SIZE *ov;
    int rc;

    rc = pcre2_match(re.re[id], (PCRE2_SPTR)n->s, n->len, start, 0, md, NULL);
    if (rc <= 0)
        return false;
    ov = pcre2_get_ovector_pointer(md);
    if (g >= rc || ov[2 * g] == PCRE2_UNSET)
        return false;
    sp->s = ov[2 * g];
    sp->e = ov[2 * g + 1];
    return sp->e > sp->s;
}

static bool has(enum re_id id, const struct norm *n, pcre2_match_data *md)
{
    return pcre2_match(re.re[id], (PCRE2_SPTR)n->s, n->len, 0, 0, md, NULL) > 0;
}

static bool overlaps(struct span a, struct span b)
{
    return a.s < b.e && b.s < a.e;
}

/* The text as typed behind sp, owned by the arena. */
static char *typed(struct arena *a, const struct norm *n, struct span sp)
{
    size_t s = n->from[sp.s], e = n->to[sp.e - 1];

    return arena_strndup(a, n->orig + s, e - s);
}

/* "WO-2024-000123" from the groups of RE_WO/RE_EQ (year, number). */
static char *number(struct arena *a, const char *prefix, const struct norm *n, pcre2_match_data *md)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    int year_len = (int)(ov[3] - ov[2]), num_len = (int)(ov[5] - ov[4]);

    return arena_printf(a, "%s-%.*s-%.*s%.*s", prefix, year_len, n->s + ov[2], 6 - num_len,
                        "000000", num_len, n->s + ov[4]);
}

static char *upper(char *s)
{
    for (char *p = s; p && *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    return s;
}

/* A report's title: "Pump 3: leaking (line 2)", at most MAX_TITLE bytes. */
static char *make_title(struct arena *a, const char *machine, const char *symptom,
                        const char *location, const char *fault)
{
    char *t;
    size_t n;

    t = arena_printf(a, "%s%s%s%s%s%s%s", machine ? machine : "", machine ? ": " : "", symptom,
                     fault ? " " : "", fault ? fault : "", location ? " (" : "",
                     location ? location : "");
    if (!t)
        return NULL;
    if (location)
        t = arena_printf(a, "%s)", t);
    if (!t)
        return NULL;
    if (t[0] >= 'a' && t[0] <= 'z')
        t[0] = (char)(t[0] - 'a' + 'A');
    n = strlen(t);
    if (n > MAX_TITLE)
        t[utf8_prefix(t, MAX_TITLE)] = '\0';
    return t;
}

static bool span_has_digit(const struct norm *n, struct span sp)
{
    return has_digit(n->s + sp.s, sp.e - sp.s);
}

/* The machine: a quoted name, a machine noun with its number ("vfd on
 * pump 6" is pump 6), a machine noun, a model or a tag; spans already
 * taken (location, numbers, fault code) are skipped. */
static bool find_machine(const struct norm *n, pcre2_match_data *md, const struct span *taken,
                         int n_taken, struct span *out)
{
    static const enum re_id order[] = {RE_QUOTED, RE_SQUOTED, RE_MACHINE, RE_MODEL};

    for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++) {
        size_t start = 0;
        struct span sp;
        bool found = false;

        while (start < n->len && find(order[o], n, start, 1, md, &sp)) {
            bool clash = false;

            for (int t = 0; t < n_taken; t++)
                if (overlaps(sp, taken[t]))
                    clash = true;
            if (!clash) {
                if (order[o] != RE_MACHINE || span_has_digit(n, sp)) {
                    *out = sp;
                    return true;
                }
                if (!found)
                    *out = sp;
                found = true;
            }
            start = sp.e;
        }
        if (found)
            return true;
    }
    return false;
}

static int count_words(const char *s)
{
    int w = 0;
    bool in = false;

    for (; *s; s++) {
        bool wb = is_word_byte((unsigned char)*s);

        if (wb && !in)
            w++;
        in = wb;
    }
    return w;
}

int intent_parse(struct arena *a, const char *text, size_t len, struct intent *out)
{
    pcre2_match_data *md = NULL;
    struct norm n;
    struct span loc = {0}, mach = {0}, sym = {0}, num = {0}, fault = {0}, taken[4];
    int n_taken = 0, r = 0;
    size_t i = 0;
    bool have_mach = false, have_sym, numbered = false;
    const char *end;

    memset(out, 0, sizeof(*out));
    if (!text)
        return 0;
    if (len > MAX_TEXT)
        len = MAX_TEXT;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    if (i == len || text[i] == '/')
        return 0;
    if (!utf8_valid(text, len)) {
        /* a cut inside a character is no reason to refuse: the partial
         * character at the end is dropped, reading only text[0..len) (the
         * text need not be NUL-terminated) */
        size_t k = len;
        unsigned char c;

        while (k > 0 && len - k < 3 && ((unsigned char)text[k - 1] & 0xc0) == 0x80)
            k--;
        c = k > 0 ? (unsigned char)text[k - 1] : 0;
        if (c >= 0xc0 && len - (k - 1) < (c >= 0xf0 ? 4u : c >= 0xe0 ? 3u : 2u))
            len = k - 1;
        if (!utf8_valid(text, len))
            return 0;
    }
    pthread_once(&re_once, re_init);
    if (!re.ok)
        return 0;
    r = normalise(a, text, len, &n);
    if (r < 0)
        goto out;
    md = pcre2_match_data_create(re.ovec, NULL);
    if (!md) {
        r = -ENOMEM;
        goto out;
    }

    /* the details, whatever the intent */
    if (find(RE_WO, &n, 0, 0, md, &num)) {
        out->wo_number = number(a, "WO", &n, md);
        if (!out->wo_number)
            goto nomem;
        taken[n_taken++] = num;
        numbered = true;
    }
    if (find(RE_EQ, &n, 0, 0, md, &num)) {
        out->eq_number = number(a, "EQ", &n, md);
        if (!out->eq_number)
            goto nomem;
        taken[n_taken++] = num;
        numbered = true;
    }
    if (find(RE_FAULT, &n, 0, 1, md, &fault) || find(RE_FAULT, &n, 0, 2, md, &fault)) {
        out->fault_code = upper(typed(a, &n, fault));
        if (!out->fault_code)
            goto nomem;
        taken[n_taken++] = fault;
    }
    if (find(RE_LOCATION, &n, 0, 1, md, &loc)) {
        out->location = typed(a, &n, loc);
        if (!out->location)
            goto nomem;
        taken[n_taken++] = loc;
    }
    if (find_machine(&n, md, taken, n_taken, &mach)) {
        out->machine = typed(a, &n, mach);
        if (!out->machine)
            goto nomem;
        have_mach = true;
    }

    /* the intent, the most specific first */
    end = n.s + n.len;
    while (end > n.s && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\t'))
        end--;
    have_sym = find(RE_SYMPTOM, &n, 0, 0, md, &sym);
    if (has(RE_DONE, &n, md))
        out->kind = INTENT_DONE;
    else if (has(RE_MY, &n, md))
        out->kind = INTENT_MY_WOS;
    else if (has(RE_OPEN, &n, md))
        out->kind = INTENT_OPEN_WOS;
    else if (has(RE_QUESTION, &n, md))
        out->kind = INTENT_QUESTION;
    else if (has(RE_ALARMS, &n, md))
        out->kind = INTENT_ALARMS;
    else if (has(RE_STATE, &n, md))
        out->kind = INTENT_STATE;
    else if (have_sym || (out->fault_code && have_mach))
        out->kind = INTENT_REPORT;
    else if (numbered)
        out->kind = INTENT_STATE;
    else if (end > n.s && end[-1] == '?')
        out->kind = have_mach || out->location ? INTENT_STATE
                    : count_words(n.s) >= 4    ? INTENT_QUESTION
                                               : INTENT_NONE;
    else if (have_mach && count_words(n.s) <= 3)
        out->kind = INTENT_STATE;

    if (out->kind == INTENT_REPORT) {
        char *symptom = have_sym ? typed(a, &n, sym) : arena_strdup(a, "fault");

        if (!symptom)
            goto nomem;
        bool minor = has(RE_MINOR, &n, md);

        if (has(RE_CRITICAL, &n, md))
            out->priority = "critical";
        else if (has(RE_HIGH, &n, md))
            out->priority = minor ? "medium" : "high";
        else if (has(RE_LOW, &n, md) || minor)
            out->priority = "low";
        else
            out->priority = "medium";
        out->title = make_title(a, out->machine, symptom, out->location, out->fault_code);
        if (!out->title)
            goto nomem;
    }
    r = 0;
    goto out;
nomem:
    r = -ENOMEM;
out:
    pcre2_match_data_free(md);
    if (r < 0)
        memset(out, 0, sizeof(*out));
    return r;
}

const char *intent_name(enum intent_kind k)
{
    switch (k) {
    case INTENT_NONE:
        return "none";
    case INTENT_REPORT:
        return "report";
    case INTENT_STATE:
        return "state";
    case INTENT_MY_WOS:
        return "my_wos";
    case INTENT_OPEN_WOS:
        return "open_wos";
    case INTENT_ALARMS:
        return "alarms";
    case INTENT_QUESTION:
        return "question";
    case INTENT_DONE:
        return "done";
    }
    return "?";
}
