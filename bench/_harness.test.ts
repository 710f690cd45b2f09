import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  compare,
  formatResult,
  formatTable,
  median,
  percentile,
  runOptions,
  type Side,
} from './_harness.js';

test('percentile interpolates between closest ranks', () => {
  const s = [5, 1, 4, 2, 3];
  assert.equal(median(s), 3);
  assert.equal(percentile(s, 0), 1);
  assert.equal(percentile(s, 100), 5);
  assert.equal(percentile(s, 25), 2);
  assert.equal(percentile([1, 2], 50), 1.5);
  assert.ok(Number.isNaN(median([])));
  assert.throws(() => percentile(s, 101), RangeError);
});

test('formatResult prints the documented keys in order', () => {
  const line = formatResult({
    bench: 'b',
    metric: 'm',
    unit: 'us',
    dmabuf: 1,
    baseline: 'x',
    baselineValue: 2,
    speedup: 2,
  });
  assert.equal(
    line,
    '{"bench":"b","metric":"m","unit":"us","dmabuf":1,"baseline":"x","baselineValue":2,"speedup":2}',
  );
});

const constant = (name: string, v: number): Side<null, number> => ({ name, run: async () => v });
const quiet = { ...runOptions({ quick: true, log: () => {} }), repeat: undefined };

test('speedup is baseline/dmabuf for lower-is-better and dmabuf/baseline for higher-is-better', async () => {
  const results = await compare({
    bench: 'b',
    options: null,
    metrics: [
      { metric: 'time', unit: 'us', better: 'lower', value: (r: number) => r },
      { metric: 'rate', unit: '/s', better: 'higher', value: (r: number) => 1 / r },
    ],
    baselines: [constant('slow', 4)],
    dmabuf: [constant('dmabuf', 2)],
    repeat: 3,
    run: quiet,
  });
  assert.deepEqual(
    results.map((r) => [r.metric, r.dmabuf, r.baselineValue, r.speedup]),
    [
      ['time', 2, 4, 2],
      ['rate', 0.5, 0.25, 2],
    ],
  );
});

test('without a dmabuf side, baselines are reported with dmabuf and speedup null', async () => {
  const results = await compare({
    bench: 'b',
    options: null,
    metrics: [{ metric: 'time', unit: 'us', better: 'lower', value: (r: number) => r }],
    baselines: [constant('a', 1), constant('c', 3)],
    dmabuf: [],
    run: quiet,
  });
  assert.deepEqual(
    results.map((r) => [r.baseline, r.dmabuf, r.speedup]),
    [
      ['a', null, null],
      ['c', null, null],
    ],
  );
  assert.match(formatTable(results), /^bench\s+metric/);
});

test('several dmabuf sides are named bench:side', async () => {
  const results = await compare({
    bench: 'b',
    options: null,
    metrics: [{ metric: 'time', unit: 'us', better: 'lower', value: (r: number) => r }],
    baselines: [constant('a', 1)],
    dmabuf: [constant('sync', 1), constant('async', 2)],
    run: quiet,
  });
  assert.deepEqual(
    results.map((r) => r.bench),
    ['b:sync', 'b:async'],
  );
});
