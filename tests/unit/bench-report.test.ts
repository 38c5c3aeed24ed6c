import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { recordBench, recordReliability, type Machine } from '../../bench/report.js';

const intel: Machine = { cpu: 'Intel Xeon', cores: 2, memGiB: 24, node: 'v20.20.2', redis: '7.0.15', platform: 'linux 6' };
const amd: Machine = { ...intel, cpu: 'AMD EPYC' };

describe('the bench report', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gw-report-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const json = () => JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8'));
  const md = () => readFileSync(join(dir, 'latest.md'), 'utf8');
  const row = (name: string) => md().split('\n').find((l) => l.startsWith(`| ${name} |`)) ?? '';

  it('keeps figures of an earlier partial run and says which machine measured each', () => {
    recordBench([{ name: 'mapping', value: 100, unit: '/s' }, { name: 'intake', value: 7000, unit: 'cases/s' }], {}, { dir, machine: intel });
    recordBench([{ name: 'intake', value: 5000, unit: 'cases/s' }], {}, { dir, machine: amd });

    const figures = json().bench.figures as Array<{ name: string; value: number; machine: string }>;
    expect(figures.map((f) => [f.name, f.value])).toEqual([
      ['mapping', 100],
      ['intake', 5000],
    ]);
    expect(figures.find((f) => f.name === 'mapping')!.machine).toContain('Intel Xeon');
    expect(figures.find((f) => f.name === 'intake')!.machine).toContain('AMD EPYC');
    // The header names the latest machine; the figure from the other one says where it came from.
    expect(md()).toContain('Machine: AMD EPYC, 2 cores');
    expect(row('mapping')).toContain('on Intel Xeon');
    expect(row('intake')).not.toContain(' on ');
  });

  it('marks reliability figures from another machine the same way', () => {
    recordReliability('redis kill', { lost: 0 }, { dir, machine: intel });
    recordReliability('worker kills', { lost: 0 }, { dir, machine: amd });
    expect(md()).toMatch(/### redis kill \(.* on Intel Xeon/);
    expect(md()).toMatch(/### worker kills \(\d{4}-\d\d-\d\d \d\d:\d\d\)/);
    expect(json().reliability['worker kills'].machine).toContain('AMD EPYC');
  });
});
