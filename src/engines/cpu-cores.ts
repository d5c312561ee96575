import { readFileSync } from 'node:fs';
import os from 'node:os';

// CPU topology for thread counts, shared by every engine (and free of native imports, so an
// ONNX-only server never loads llama.cpp to count cores).

/**
 * Unique (physical id, core id) pairs among the CPUs this process may run on.
 * Returns undefined when /proc/cpuinfo lacks topology (some VMs, many ARM
 * kernels), so callers fall back to the logical count.
 * @internal exported for tests
 */
export function countPhysicalCores(cpuinfo: string, allowed?: ReadonlySet<number>): number | undefined {
  const cores = new Set<string>();
  for (const block of cpuinfo.split(/\n\s*\n/)) {
    const processor = /^processor\s*:\s*(\d+)/m.exec(block)?.[1];
    const coreId = /^core id\s*:\s*(\d+)/m.exec(block)?.[1];
    if (processor === undefined || coreId === undefined) continue;
    if (allowed && !allowed.has(Number(processor))) continue;
    const physicalId = /^physical id\s*:\s*(\d+)/m.exec(block)?.[1] ?? '0';
    cores.add(`${physicalId}:${coreId}`);
  }
  return cores.size > 0 ? cores.size : undefined;
}

/**
 * Parses a Linux CPU list such as `0-3,8,10-11` (as in `Cpus_allowed_list`).
 * @internal exported for tests
 */
export function parseCpuList(list: string): Set<number> {
  const cpus = new Set<number>();
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) continue;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    for (let i = from; i <= to; i++) cpus.add(i);
  }
  return cpus;
}

/**
 * CPUs worth of quota from cgroup v2 `cpu.max` (`"<quota> <period>"` or
 * `"max <period>"`), rounded up; undefined when unlimited or unparsable.
 * @internal exported for tests
 */
export function parseCgroupCpuMax(text: string): number | undefined {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || quota === 'max' || period === undefined) return undefined;
  const q = Number(quota);
  const p = Number(period);
  if (!(q > 0) || !(p > 0)) return undefined;
  return Math.max(1, Math.ceil(q / p));
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function cgroupCpuLimit(): number | undefined {
  const v2 = readText('/sys/fs/cgroup/cpu.max');
  if (v2 !== undefined) return parseCgroupCpuMax(v2);
  const quota = readText('/sys/fs/cgroup/cpu/cpu.cfs_quota_us');
  const period = readText('/sys/fs/cgroup/cpu/cpu.cfs_period_us');
  if (quota === undefined || period === undefined) return undefined;
  const q = Number(quota.trim());
  return q > 0 ? parseCgroupCpuMax(`${q} ${period.trim()}`) : undefined;
}

/**
 * Physical CPU cores this process can actually use: hyper-threads are not
 * counted (llama.cpp's matmuls saturate a core's FPUs, so SMT siblings only
 * add contention), CPUs outside the affinity mask are ignored and a cgroup
 * CPU quota caps the result. Never less than 1.
 */
export function physicalCoreCount(): number {
  const logical = os.availableParallelism();
  let cores = logical;
  if (process.platform === 'linux') {
    const cpuinfo = readText('/proc/cpuinfo');
    const allowedList = /^Cpus_allowed_list:\s*(.+)$/m.exec(readText('/proc/self/status') ?? '')?.[1];
    const allowed = allowedList ? parseCpuList(allowedList) : undefined;
    const physical = cpuinfo ? countPhysicalCores(cpuinfo, allowed && allowed.size > 0 ? allowed : undefined) : undefined;
    if (physical !== undefined) cores = Math.min(physical, logical);
    const quota = cgroupCpuLimit();
    if (quota !== undefined) cores = Math.min(cores, quota);
  }
  return Math.max(1, cores);
}
