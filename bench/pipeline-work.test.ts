import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkFrameBytes,
  checksumFrame,
  FILL_STRIDE,
  fillFrame,
  MODIFY_XOR,
  modifyFrame,
  patternWord,
  verifyFrame,
} from './pipeline-work.js';

const BYTES = 64 << 10;

function produce(
  frame: number,
  words = new Uint32Array(BYTES / 4),
): { words: Uint32Array; sum: number } {
  fillFrame(words, frame);
  modifyFrame(words);
  return { words, sum: checksumFrame(words) };
}

test('a frame produced, modified and checksummed verifies', () => {
  for (const frame of [0, 1, 7, 0x7fffffff]) {
    const { words, sum } = produce(frame);
    assert.equal(verifyFrame(words, frame, sum), true);
  }
});

test('the producer writes the pattern, stage 1 XORs every 4th written word', () => {
  const words = new Uint32Array(BYTES / 4);
  fillFrame(words, 5);
  assert.equal(words[FILL_STRIDE * 3], patternWord(5, 3));
  modifyFrame(words);
  assert.equal(words[0], (patternWord(5, 0) ^ MODIFY_XOR) >>> 0);
  assert.equal(words[FILL_STRIDE], patternWord(5, 1));
  assert.equal(words[FILL_STRIDE * 4], (patternWord(5, 4) ^ MODIFY_XOR) >>> 0);
});

test('a stale frame fails verification', () => {
  const { words, sum } = produce(3);
  assert.equal(verifyFrame(words, 7, sum), false);
});

test('one corrupt word fails verification', () => {
  const { words, sum } = produce(9);
  words[FILL_STRIDE * 100]! ^= 1;
  assert.equal(verifyFrame(words, 9, sum), false);
});

test('a frame stage 1 skipped fails verification', () => {
  const words = new Uint32Array(BYTES / 4);
  fillFrame(words, 2);
  assert.equal(verifyFrame(words, 2, checksumFrame(words)), false);
});

test('a wrong checksum fails verification', () => {
  const { words, sum } = produce(4);
  assert.equal(verifyFrame(words, 4, (sum + 1) | 0), false);
});

test('frame sizes must be positive multiples of 256 bytes', () => {
  assert.equal(checkFrameBytes(1920 * 1080 * 4), 1920 * 1080 * 4);
  assert.throws(() => checkFrameBytes(0), RangeError);
  assert.throws(() => checkFrameBytes(1000), RangeError);
});
