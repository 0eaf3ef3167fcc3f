// Reads and checks the BPMN files of bpmn/: each must parse (bpmn-moddle with the camunda: extension), every
// external task's topic must have a handler and every condition must compile, else the start fails naming the file.
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { Engine } from "bpmn-engine";
import { compileJuel, ExpressionError } from "../../actors/workflow-expressions.ts";
import { TOPICS } from "../../actors/workflow-topics.ts";

const require = createRequire(import.meta.url);
/** camunda-bpmn-moddle's schema: lets the parser keep camunda:type, camunda:topic, camunda:inputOutput, … */
export const CAMUNDA_MODDLE = require("camunda-bpmn-moddle/resources/camunda.json") as object;

interface ModdleContext { rootElement: ModdleElement; warnings: ModdleWarning[] }
/** The very bpmn-moddle bpmn-engine parses with (resolved from bpmn-engine's own location). */
const BpmnModdle = createRequire(require.resolve("bpmn-engine"))("bpmn-moddle") as new (packages: object) => {
	fromXML(xml: string): Promise<ModdleContext>;
};

export interface ProcessDefinition {
	/** The process id: what starts it (Camunda: the process definition key). */
	key: string;
	name: string;
	file: string;
	xml: string;
	/** Message name -> message id (the embedded engine signals messages by id). */
	messages: Map<string, string>;
	/** External-task topics its service tasks use. */
	topics: Set<string>;
}

/** A BPMN file that cannot be used; `message` is "file: reason". */
export class BpmnFileError extends Error {
	override name = "BpmnFileError";
	readonly file: string;
	readonly reason: string;
	constructor(file: string, reason: string) {
		super(`${path.relative(process.cwd(), file) || file}: ${reason}`);
		this.file = file;
		this.reason = reason;
	}
}

interface ModdleElement {
	$type: string;
	id?: string;
	name?: string;
	type?: string;
	topic?: string;
	flowElements?: ModdleElement[];
	rootElements?: ModdleElement[];
	conditionExpression?: { body?: string };
	eventDefinitions?: ModdleElement[];
	timeDuration?: { body?: string };
	extensionElements?: { values?: ModdleElement[] };
	inputParameters?: { name: string; value?: string }[];
}

interface ModdleWarning { message: string; element?: { id?: string } }

/** The expression inside `${…}` when the whole text is one (paths into the engine are left to the engine). */
function innerExpression(text: string | undefined): string | null {
	if (!text) return null;
	const m = /^\s*\$\{([\s\S]*)\}\s*$/.exec(text);
	if (!m || /^\s*(environment|content|properties|fields)\s*[.[]/.test(m[1])) return null;
	return m[1];
}

/** Parses one BPMN file into its definition(s); throws BpmnFileError with the reason. */
export async function loadBpmnFile(file: string): Promise<ProcessDefinition[]> {
	let xml: string;
	try {
		xml = readFileSync(file, "utf8");
	} catch (err) {
		throw new BpmnFileError(file, `cannot read: ${(err as Error).message}`);
	}
	let moddle: ModdleContext;
	try {
		moddle = await new BpmnModdle({ camunda: CAMUNDA_MODDLE }).fromXML(xml.trim());
	} catch (err) {
		throw new BpmnFileError(file, `not valid BPMN 2.0 XML: ${(err as Error).message.replace(/\s+/g, " ")}`);
	}
	if (moddle.warnings.length > 0) {
		const w = moddle.warnings[0];
		throw new BpmnFileError(file, `${w.message.replace(/\s+/g, " ")}${w.element?.id ? ` (element ${w.element.id})` : ""}`);
	}
	// What the engine itself would build from it: fails on elements bpmn-elements cannot run.
	try {
		await new Engine({ name: path.basename(file), moddleContext: moddle, moddleOptions: { camunda: CAMUNDA_MODDLE } }).getDefinitions();
	} catch (err) {
		throw new BpmnFileError(file, `the embedded engine cannot load it: ${(err as Error).message.replace(/\s+/g, " ")}`);
	}
	const roots = moddle.rootElement.rootElements ?? [];
	const messages = new Map<string, string>();
	for (const el of roots) if (el.$type === "bpmn:Message" && el.id && el.name) messages.set(el.name, el.id);
	const processes = roots.filter(el => el.$type === "bpmn:Process");
	if (processes.length === 0) throw new BpmnFileError(file, "no <process> in the file");
	return processes.map(proc => {
		const topics = new Set<string>();
		for (const el of flowElementsOf(proc)) {
			if (el.$type === "bpmn:ServiceTask" && el.type === "external") {
				if (!el.topic) throw new BpmnFileError(file, `service task ${el.id} is camunda:type="external" without a camunda:topic`);
				if (!TOPICS.includes(el.topic)) throw new BpmnFileError(file, `service task ${el.id} uses topic "${el.topic}", which no handler serves (known: ${TOPICS.join(", ")})`);
				topics.add(el.topic);
			} else if (el.$type === "bpmn:ServiceTask" && el.type !== "external") {
				throw new BpmnFileError(file, `service task ${el.id} must be an external task (camunda:type="external" camunda:topic="…"): both engines run topic handlers only`);
			}
			checkExpression(file, el.id, innerExpression(el.conditionExpression?.body));
			for (const ed of el.eventDefinitions ?? []) checkExpression(file, el.id, innerExpression(ed.timeDuration?.body));
			for (const ext of el.extensionElements?.values ?? []) {
				for (const p of ext.inputParameters ?? []) checkExpression(file, el.id, innerExpression(p.value));
			}
		}
		return { key: proc.id ?? path.basename(file, ".bpmn"), name: proc.name ?? proc.id ?? "", file, xml, messages, topics };
	});
}

function checkExpression(file: string, elementId: string | undefined, inner: string | null): void {
	if (inner === null) return;
	try {
		compileJuel(inner.trim());
	} catch (err) {
		const reason = err instanceof ExpressionError ? err.message : String(err);
		throw new BpmnFileError(file, `element ${elementId ?? "?"}: ${reason}`);
	}
}

function flowElementsOf(container: ModdleElement): ModdleElement[] {
	const out: ModdleElement[] = [];
	for (const el of container.flowElements ?? []) {
		out.push(el);
		if (el.flowElements) out.push(...flowElementsOf(el));
	}
	return out;
}

/** Every process of every *.bpmn file in a directory; two files defining the same process id are an error. */
export async function loadBpmnDir(dir: string): Promise<Map<string, ProcessDefinition>> {
	let files: string[];
	try {
		files = readdirSync(dir).filter(f => f.endsWith(".bpmn")).sort();
	} catch (err) {
		throw new BpmnFileError(dir, `cannot read the BPMN directory: ${(err as Error).message}`);
	}
	const defs = new Map<string, ProcessDefinition>();
	for (const f of files) {
		for (const def of await loadBpmnFile(path.join(dir, f))) {
			const other = defs.get(def.key);
			if (other) throw new BpmnFileError(def.file, `process id "${def.key}" is also defined in ${path.basename(other.file)}`);
			defs.set(def.key, def);
		}
	}
	return defs;
}
