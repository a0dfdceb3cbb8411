// One SQLite connection: pragmas, migrations, cached statements and transactions.

import { DatabaseSync, type DatabaseSyncInstance, type StatementSyncInstance } from '@photostructure/sqlite';
import { SchemaTooNewError } from './errors';
import { MIGRATIONS, SCHEMA_VERSION } from './schema';

/** A value SQLite binds or returns. */
export type SqlValue = string | number | bigint | null | Uint8Array;
export type SqlRow = Record<string, SqlValue>;

const BUSY_TIMEOUT_MS = 5000;

export class Database {
  private readonly db: DatabaseSyncInstance;
  private readonly statements = new Map<string, StatementSyncInstance>();
  private savepointDepth = 0;

  constructor(readonly file: string) {
    this.db = new DatabaseSync(file, { timeout: BUSY_TIMEOUT_MS, enableForeignKeyConstraints: true });
    try {
      this.db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      this.db.exec('PRAGMA journal_mode = WAL');
      // NORMAL is durable across application crashes in WAL mode, and much faster than FULL.
      this.db.exec('PRAGMA synchronous = NORMAL');
      this.db.exec('PRAGMA foreign_keys = ON');
      this.migrate();
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  get schemaVersion(): number {
    return Number((this.db.prepare('PRAGMA user_version').get() as SqlRow).user_version);
  }

  private migrate(): void {
    const found = this.schemaVersion;
    if (found > SCHEMA_VERSION) throw new SchemaTooNewError(this.file, found, SCHEMA_VERSION);
    for (let version = found; version < SCHEMA_VERSION; version++) {
      // user_version lives in the database header, so it commits or rolls back with the step.
      this.transaction(() => {
        this.db.exec(MIGRATIONS[version]!);
        this.db.exec(`PRAGMA user_version = ${version + 1}`);
      });
    }
  }

  prepare(sql: string): StatementSyncInstance {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  run(sql: string, ...params: SqlValue[]): { changes: number } {
    const { changes } = this.prepare(sql).run(...params);
    return { changes: Number(changes) };
  }

  get(sql: string, ...params: SqlValue[]): SqlRow | undefined {
    return this.prepare(sql).get(...params) as SqlRow | undefined;
  }

  all(sql: string, ...params: SqlValue[]): SqlRow[] {
    return this.prepare(sql).all(...params) as SqlRow[];
  }

  /** Runs `fn` atomically; nested calls become savepoints of the outer transaction. */
  transaction<T>(fn: () => T): T {
    if (this.savepointDepth > 0 || this.db.isTransaction) {
      const name = `sp${++this.savepointDepth}`;
      this.db.exec(`SAVEPOINT ${name}`);
      try {
        const result = fn();
        this.db.exec(`RELEASE ${name}`);
        return result;
      } catch (err) {
        this.db.exec(`ROLLBACK TO ${name}`);
        this.db.exec(`RELEASE ${name}`);
        throw err;
      } finally {
        this.savepointDepth--;
      }
    }
    // IMMEDIATE takes the write lock up front, so a busy database waits rather than failing mid-way.
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const result = fn();
      this.db.exec('COMMIT');
      return result;
    } catch (err) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
  }

  close(): void {
    if (!this.db.isOpen) return;
    this.statements.clear();
    this.db.close();
  }
}
