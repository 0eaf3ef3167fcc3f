// The mechanics of the message contract: an action or event is its name with its params/result (payload) types
// attached, and `call`/`emit`/`broadcast` take that descriptor instead of a string, so neither the name nor the
// shape of a message can be got wrong by a caller. Pure: the broker or context is passed in.

/** An action of the contract: its full name ("customers.handle") and, as types only, its params and result. */
export interface Action<P, R> {
	readonly name: string;
	/** Never set: carries P and R for the type checker. */
	readonly __types?: (params: P) => R;
}

/** A Moleculer event of the contract: its name and, as a type only, its payload. */
export interface EventDef<P> {
	readonly name: string;
	/** Never set: carries P for the type checker. */
	readonly __payload?: (payload: P) => void;
}

export function action<P, R>(name: string): Action<P, R> {
	return Object.freeze({ name });
}

export function event<P>(name: string): EventDef<P> {
	return Object.freeze({ name });
}

/** The params and result of an action descriptor. */
export type ParamsOf<A> = A extends Action<infer P, unknown> ? P : never;
export type ResultOf<A> = A extends Action<never, infer R> ? R : never;
/** The payload of an event descriptor. */
export type PayloadOf<E> = E extends EventDef<infer P> ? P : never;

/** Calling options as the broker takes them (a subset; models/ stays free of Moleculer's types). */
export interface CallOptions {
	timeout?: number;
	retries?: number;
	nodeID?: string;
	/** The calling service's name: the metrics middleware counts events per source by it. */
	caller?: string;
	meta?: Record<string, unknown>;
	parentCtx?: unknown;
}

/** A ServiceBroker or a Context: anything that calls actions. */
export interface ActionCaller {
	call(actionName: string, params?: any, opts?: any): Promise<any>;
}

/** A ServiceBroker or a Context: anything that emits events. */
export interface EventEmitter {
	emit(eventName: string, payload?: any, opts?: any): Promise<any> | void;
}

export interface EventBroadcaster {
	broadcast(eventName: string, payload?: any, opts?: any): Promise<any> | void;
}

export function call<P, R>(via: ActionCaller, a: Action<P, R>, params: P, opts?: CallOptions): Promise<R> {
	return via.call(a.name, params, opts) as Promise<R>;
}

export function emit<P>(via: EventEmitter, e: EventDef<P>, payload: P, opts?: { groups?: string[]; parentCtx?: unknown }): Promise<void> {
	return Promise.resolve(via.emit(e.name, payload, opts)).then(() => undefined);
}

export function broadcast<P>(via: EventBroadcaster, e: EventDef<P>, payload: P, opts?: { groups?: string[] }): Promise<void> {
	return Promise.resolve(via.broadcast(e.name, payload, opts)).then(() => undefined);
}

/**
 * The type of the params a fastest-validator schema accepts (the subset of rules used here), so a param type is
 * derived from the schema that validates it instead of written again by hand.
 */
export type Validated<S> = Simplify<
	{ -readonly [K in keyof S as IsOptional<S[K]> extends true ? never : K]: RuleValue<S[K]> } &
	{ -readonly [K in keyof S as IsOptional<S[K]> extends true ? K : never]?: RuleValue<S[K]> }
>;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type IsOptional<R> = R extends { optional: true } ? true : false;
type RuleValue<R> =
	R extends "string" ? string
	: R extends "number" ? number
	: R extends "boolean" ? boolean
	: R extends "object" ? Record<string, unknown>
	: R extends { type: "string" } ? string
	: R extends { type: "number" } ? number
	: R extends { type: "boolean" } ? boolean
	: R extends { type: "enum"; values: readonly (infer V)[] } ? V
	: R extends { type: "equal"; value: infer V } ? V
	: R extends { type: "array"; items: infer I } ? RuleValue<I>[]
	: R extends { type: "object"; props: infer P } ? Validated<P>
	: R extends { type: "object" } ? Record<string, unknown>
	: R extends { type: "record" } ? Record<string, unknown>
	: unknown;
