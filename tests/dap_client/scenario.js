// Drives `escope dap` with the DebugClient of @vscode/debugadapter-testsupport
// (the client VS Code's own debug adapters are tested with), through one
// time-travel scenario on a real recording.  Run by tests/test_dap_client.py:
//
//   NODE_PATH=<node_modules> node scenario.js <escope executable> <config.json>
//
// config.json: {"recording", "cwd", "test_file", "helper_file", "lines": {...}}.
// Every step is checked; the first failed check prints "FAIL: ..." and the
// exit status is 1.  Each passed step prints "ok <what>", the last line is
// "scenario passed".

'use strict';

const assert = require('assert');
const fs = require('fs');
const { DebugClient } = require('@vscode/debugadapter-testsupport');

const [escope, configPath] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const L = config.lines;

function ok(what) {
    console.log(`ok ${what}`);
}

async function top(dc, threadId) {
    const st = await dc.stackTraceRequest({ threadId });
    assert.ok(st.body.stackFrames.length > 0, 'stackTrace returned no frames');
    return st.body.stackFrames[0];
}

async function motion(dc, request, reason) {
    const [, stopped] = await Promise.all([request(), dc.waitForEvent('stopped')]);
    assert.strictEqual(stopped.body.reason, reason, `stopped for ${stopped.body.reason}, not ${reason}`);
    return stopped;
}

async function value(dc, frameId, expression) {
    const r = await dc.evaluateRequest({ expression, frameId, context: 'watch' });
    return r.body.result;
}

async function main() {
    const dc = new DebugClient(escope, 'dap', 'escope', { cwd: config.cwd }, true);
    // a guard against a hang, not a timing check: the machine may be busy
    dc.defaultTimeout = 60000;
    await dc.start();
    try {
        // launch -> stopped at the failure
        const [, , stopped] = await Promise.all([
            dc.configurationSequence(),
            dc.launch({ recording: config.recording, cwd: config.cwd, stopAt: 'failure' }),
            dc.waitForEvent('stopped'),
        ]);
        assert.strictEqual(stopped.body.reason, 'exception');
        const threadId = stopped.body.threadId;
        ok('launch stopped at the failure');

        const threads = await dc.threadsRequest();
        assert.ok(threads.body.threads.some(t => t.id === threadId && t.name === 'MainThread'),
            `threads: ${JSON.stringify(threads.body.threads)}`);

        // stackTrace
        let frame = await top(dc, threadId);
        assert.strictEqual(frame.name, 'test_basket');
        assert.strictEqual(frame.line, L.assert);
        assert.ok(frame.source.path.endsWith(config.test_file), `source ${JSON.stringify(frame.source)}`);
        const failureStep = frame.instructionPointerReference;
        ok(`stackTrace: test_basket line ${frame.line}, step ${failureStep}`);

        // variables: Locals, a container and an object's fields
        const scopes = await dc.scopesRequest({ frameId: frame.id });
        const names = scopes.body.scopes.map(s => s.name);
        assert.strictEqual(names[0], 'Locals');
        assert.ok(names.some(n => n.startsWith('Exception')), `scopes: ${names}`);
        const locals = (await dc.variablesRequest({ variablesReference: scopes.body.scopes[0].variablesReference })).body.variables;
        const byName = Object.fromEntries(locals.map(v => [v.name, v]));
        assert.strictEqual(byName.t.value, '24');
        assert.strictEqual(byName.prices.value, '[6, 8, 10]');
        assert.ok(byName.basket.variablesReference > 0, 'basket is not expandable');
        const fields = (await dc.variablesRequest({ variablesReference: byName.basket.variablesReference })).body.variables;
        const items = fields.find(v => v.name === 'items');
        assert.ok(items && items.value === '[3, 4, 5]', `basket fields: ${JSON.stringify(fields)}`);
        const kept = (await dc.variablesRequest({ variablesReference: items.variablesReference })).body.variables;
        assert.deepStrictEqual(kept.map(v => [v.name, v.value, v.evaluateName]),
            [['[0]', '3', 'basket.items[0]'], ['[1]', '4', 'basket.items[1]'], ['[2]', '5', 'basket.items[2]']]);
        const inventory = (await dc.variablesRequest({ variablesReference: byName.inventory.variablesReference })).body.variables;
        assert.deepStrictEqual(inventory.map(v => [v.name, v.value]), [["'apples'", '3'], ["'pears'", '4']]);
        ok('variables: locals, object fields, list items, dict entries');

        // stepBack x3, then next x3 back to the same step
        const back = [];
        for (let i = 0; i < 3; i++) {
            await motion(dc, () => dc.stepBackRequest({ threadId }), 'step');
            frame = await top(dc, threadId);
            back.push(Number(frame.instructionPointerReference));
        }
        assert.ok(back[0] < Number(failureStep) && back[1] < back[0] && back[2] < back[1], `stepBack steps ${back}`);
        ok(`stepBack x3: steps ${back.join(', ')}`);
        const fwd = [];
        for (let i = 0; i < 3; i++) {
            await motion(dc, () => dc.nextRequest({ threadId }), 'step');
            frame = await top(dc, threadId);
            fwd.push(Number(frame.instructionPointerReference));
        }
        assert.deepStrictEqual(fwd, [back[1], back[0], Number(failureStep)]);
        assert.strictEqual(frame.line, L.assert);
        ok(`next x3: steps ${fwd.join(', ')}, back at the failure`);

        // reverseContinue to a breakpoint, then evaluate there
        const set = await dc.setBreakpointsRequest({ source: { path: config.test_file }, breakpoints: [{ line: L.acc }] });
        assert.ok(set.body.breakpoints[0].verified, `breakpoint not verified: ${JSON.stringify(set.body)}`);
        const hit = await motion(dc, () => dc.reverseContinueRequest({ threadId }), 'breakpoint');
        assert.deepStrictEqual(hit.body.hitBreakpointIds, [set.body.breakpoints[0].id]);
        frame = await top(dc, threadId);
        assert.strictEqual(frame.name, 'total');
        assert.strictEqual(frame.line, L.acc);
        assert.strictEqual(await value(dc, frame.id, 'p'), '10');
        assert.strictEqual(await value(dc, frame.id, 'acc'), '14');
        ok('reverseContinue stopped at the breakpoint; evaluate p = 10, acc = 14');
        const up = (await dc.stackTraceRequest({ threadId })).body.stackFrames[1];
        assert.strictEqual(await value(dc, up.id, 'basket.items[2]'), '5');
        ok('evaluate basket.items[2] = 5 in the caller');

        // a conditional breakpoint over recorded values
        await dc.setBreakpointsRequest({ source: { path: config.test_file }, breakpoints: [{ line: L.acc, condition: 'p == 6' }] });
        await motion(dc, () => dc.reverseContinueRequest({ threadId }), 'breakpoint');
        frame = await top(dc, threadId);
        assert.strictEqual(await value(dc, frame.id, 'p'), '6');
        assert.strictEqual(await value(dc, frame.id, 'acc'), '0');
        ok('conditional breakpoint p == 6: acc = 0');

        // hitCondition: the 2nd hit of the line, counted from the film's start
        await dc.setBreakpointsRequest({ source: { path: config.test_file }, breakpoints: [{ line: L.acc, hitCondition: '2' }] });
        await motion(dc, () => dc.continueRequest({ threadId }), 'breakpoint');
        frame = await top(dc, threadId);
        assert.strictEqual(await value(dc, frame.id, 'p'), '8');
        ok('hitCondition 2: p = 8');
        await dc.setBreakpointsRequest({ source: { path: config.test_file }, breakpoints: [] });

        // the embedded source of a deleted file
        assert.ok(!fs.existsSync(config.helper_file), 'the helper file should have been deleted');
        await dc.setBreakpointsRequest({ source: { path: config.helper_file }, breakpoints: [{ line: L.append }] });
        await motion(dc, () => dc.reverseContinueRequest({ threadId }), 'breakpoint');
        frame = await top(dc, threadId);
        assert.strictEqual(frame.name, 'scale');
        assert.ok(!frame.source.path && frame.source.sourceReference > 0, `source ${JSON.stringify(frame.source)}`);
        const src = await dc.sourceRequest({ sourceReference: frame.source.sourceReference, source: frame.source });
        assert.ok(src.body.content.includes('def scale(values, factor):'), src.body.content);
        assert.ok(src.body.content.split('\n')[L.append - 1].trim().startsWith('out.append(v * factor)'));
        ok('embedded source of the deleted helper file');
        await dc.setBreakpointsRequest({ source: { path: config.helper_file }, breakpoints: [] });

        // goto the nearest step at a line, then the raised exception
        const targets = await dc.gotoTargetsRequest({ source: { path: config.test_file }, line: L.check });
        assert.ok(targets.body.targets.length > 0, 'no goto target');
        await motion(dc, () => dc.gotoRequest({ threadId, targetId: targets.body.targets[0].id }), 'goto');
        frame = await top(dc, threadId);
        assert.strictEqual(frame.line, L.check);
        ok(`goto line ${L.check}`);
        await dc.setExceptionBreakpointsRequest({ filters: ['raised'] });
        await motion(dc, () => dc.continueRequest({ threadId }), 'exception');
        const info = await dc.exceptionInfoRequest({ threadId });
        assert.strictEqual(info.body.exceptionId, 'ValueError');
        assert.ok(info.body.description.includes('too big: 24'), info.body.description);
        ok('raised exception: ValueError too big: 24');

        // off the end of the film: terminated
        await dc.setExceptionBreakpointsRequest({ filters: [] });
        await Promise.all([dc.continueRequest({ threadId }), dc.waitForEvent('terminated')]);
        ok('continue past the last breakpoint: terminated');

        await dc.disconnectRequest({});
        ok('disconnect');
    } finally {
        dc.stopAdapter();
    }
}

main().then(() => {
    console.log('scenario passed');
    process.exit(0);
}, err => {
    console.log(`FAIL: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
});
