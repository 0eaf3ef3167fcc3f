// Settings for nools rules and BPMN workflows (embedded engine or Camunda), read from the environment.
import type { Env } from "./env.ts";

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface AutomationConfig {}

export function loadAutomationConfig(_env: Env): AutomationConfig {
	return {};
}
