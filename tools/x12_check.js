// Parses X12 documents with node-x12 (npm; not written by this project) in
// strict mode, which refuses an interchange whose control numbers or
// segment counts do not match (IEA01/IEA02 against ISA13 and the groups,
// GE01/GE02 against GS06 and the transaction sets, SE01/SE02 against the
// segments and ST02) and an ISA of the wrong length. Prints one JSON line
// per file: what the envelopes say, or the parser's error.
//   NODE_PATH=<dir with node-x12> node tools/x12_check.js FILE...
'use strict';
const fs = require('fs');
const { X12Parser } = require('node-x12');

for (const file of process.argv.slice(2)) {
    const result = { file };
    try {
        const edi = fs.readFileSync(file, 'utf8');
        const interchange = new X12Parser(true).parse(edi);
        const group = interchange.functionalGroups[0];
        const set = group.transactions[0];
        const ids = (tag) => set.segments.filter((s) => s.tag === tag);
        result.ok = true;
        result.isa13 = interchange.header.valueOf(13);
        result.isa15 = interchange.header.valueOf(15);
        result.iea02 = interchange.trailer.valueOf(2);
        result.groups = interchange.functionalGroups.length;
        result.gs01 = group.header.valueOf(1);
        result.gs06 = group.header.valueOf(6);
        result.st01 = set.header.valueOf(1);
        result.st02 = set.header.valueOf(2);
        result.se01 = set.trailer.valueOf(1);
        result.segments = set.segments.length + 2;   // with ST and SE
        result.lin = ids('LIN').map((s) => [s.valueOf(2), s.valueOf(3), s.valueOf(4), s.valueOf(5)]);
        result.qty = ids('QTY').map((s) => [s.valueOf(1), s.valueOf(2)]);
        result.ctt = ids('CTT').map((s) => s.valueOf(1))[0];
        result.sets = group.transactions.map((t) => ({
            st02: t.header.valueOf(2),
            se01: t.trailer.valueOf(1),
            segments: t.segments.length + 2,
            lin: t.segments.filter((s) => s.tag === 'LIN').length,
            ctt: t.segments.filter((s) => s.tag === 'CTT').map((s) => s.valueOf(1))[0],
        }));
        result.ge01 = group.trailer.valueOf(1);
    } catch (e) {
        result.ok = false;
        result.error = String(e.message || e);
    }
    process.stdout.write(JSON.stringify(result) + '\n');
}
