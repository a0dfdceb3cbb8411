// The engine's status (model, state, memory), the backend settings, and the connection.
import { create } from 'zustand';
import type { Settings } from '../../../electron/api/requests';
import type { EngineStatus } from '../../../electron/api/types';
import type { ConnectionState } from '../api/client';
import { client } from '../api/current';
import { describeError } from '../lib/errors';

export type SettingKey = keyof Settings;

interface EngineState {
  status: EngineStatus | null;
  statusError: string | null;
  settings: Settings | null;
  settingErrors: Partial<Record<SettingKey, string>>;
  connection: ConnectionState;
  setStatus(status: EngineStatus): void;
  setConnection(connection: ConnectionState): void;
  refresh(): Promise<void>;
  loadSettings(): Promise<void>;
  saveSetting(key: SettingKey, value: number): Promise<boolean>;
}

export const useEngine = create<EngineState>()((set) => ({
  status: null,
  statusError: null,
  settings: null,
  settingErrors: {},
  connection: 'connecting',
  setStatus(status) {
    set({ status, statusError: null });
  },
  setConnection(connection) {
    set({ connection });
  },
  async refresh() {
    try {
      set({ status: await client().call('engine.status', {}), statusError: null });
    } catch (error) {
      set({ statusError: describeError(error) });
    }
  },
  async loadSettings() {
    try {
      set({ settings: await client().call('settings.get', {}) });
    } catch (error) {
      set({ statusError: describeError(error) });
    }
  },
  async saveSetting(key, value) {
    try {
      const settings = await client().call('settings.set', { key, value });
      set((s) => ({ settings, settingErrors: { ...s.settingErrors, [key]: undefined } }));
      return true;
    } catch (error) {
      set((s) => ({ settingErrors: { ...s.settingErrors, [key]: describeError(error) } }));
      return false;
    }
  },
}));
