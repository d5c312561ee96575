import { randomUUID } from 'node:crypto';
import path from 'node:path';

/** A hidden (never scanned), unique name for `name` in `dir`: concurrent writers never share one. */
export const tempName = (dir: string, name: string) => path.join(dir, `.${name}.tmp-${process.pid}-${randomUUID()}`);

/** What link() answers where it cannot make a hard link (a file system without them, or another one). */
export const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK', 'EXDEV']);
