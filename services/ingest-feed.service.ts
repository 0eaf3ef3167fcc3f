// ingest-feed: polls an HTTP feed of CloudEvents (FEED_URL) page by page from a cursor kept durably. Each page is
// `{ "events": [ … ], "next": "<cursor>" | null }`; the next request carries `?cursor=<next>`. The cursor moves past a
// page only once every event of it is applied or dead-lettered, so a crash or an outage re-reads the page, and the
// actors' de-duplication (source + id) makes that harmless. Everything else — validating, delivering in order per
// customer, dead letters, metrics — is the event sink's (edge/event.sink.ts).
import type { Context, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import type { FeedConfig } from "../config/sources.config.ts";
import type { RetryOutcome } from "../models/contract/index.ts";
import { KeyedQueue } from "../lib/keyed.queue.ts";
import { DeliveryUnavailable, newTally, addToTally, type EventSink, type Tally } from "../edge/event.sink.ts";
import { engineOf, SourceMixin, type SourceModule, type SourceSchema, type SourceService } from "../mixins/source.mixin.ts";
import { contractError } from "../runtime/contract-error.ts";

const CURSOR_KEY = "feed/cursor";
/** Pages read in one poll at most: a feed that never runs dry still yields to the next poll. */
const MAX_PAGES_PER_POLL = 100;

export interface FeedPoll {
	pages: number;
	tally: Tally;
	cursor: string | null;
	/** Why the poll stopped early; the cursor stays at the last page fully handled. */
	error?: string;
}

/** Reads one page: the feed's answer as `{ events, next }`, or an error naming what is wrong with it. */
async function fetchPage(cfg: FeedConfig, cursor: string | null): Promise<{ events: unknown[]; next: string | null }> {
	const url = new URL(cfg.url as string);
	if (cursor !== null) url.searchParams.set("cursor", cursor);
	const res = await fetch(url, {
		headers: { accept: "application/json", ...(cfg.token ? { authorization: `Bearer ${cfg.token}` } : {}) },
		signal: AbortSignal.timeout(cfg.requestTimeoutMs)
	});
	if (!res.ok) throw new Error(`the feed answered ${res.status}`);
	const body = (await res.json()) as { events?: unknown; next?: unknown };
	if (!Array.isArray(body?.events)) throw new Error("the feed's answer has no `events` array");
	if (body.next !== undefined && body.next !== null && typeof body.next !== "string") throw new Error("the feed's `next` is not a cursor string");
	return { events: body.events, next: body.next ?? null };
}

class FeedPoller {
	private readonly cfg: FeedConfig;
	private readonly svc: FeedService;
	private readonly concurrency: number;
	private readonly abort = new AbortController();
	private timer: NodeJS.Timeout | null = null;
	private running: Promise<FeedPoll> | null = null;
	lastPoll: FeedPoll | null = null;

	constructor(svc: FeedService, cfg: FeedConfig, concurrency: number) {
		this.svc = svc;
		this.cfg = cfg;
		this.concurrency = concurrency;
	}

	private get sink(): EventSink {
		return this.svc.sink;
	}

	start(): void {
		const tick = () => {
			void this.poll().finally(() => {
				if (!this.abort.signal.aborted) this.timer = setTimeout(tick, this.cfg.pollMs).unref();
			});
		};
		tick();
	}

	async stop(): Promise<void> {
		this.abort.abort();
		if (this.timer) clearTimeout(this.timer);
		await this.running?.catch(() => undefined);
	}

	/** Reads pages until the feed is caught up; polls never overlap (a second caller gets the running one). */
	poll(): Promise<FeedPoll> {
		this.running ??= this.readPages().finally(() => (this.running = null));
		return this.running;
	}

	private async readPages(): Promise<FeedPoll> {
		const state = this.svc.sourceState();
		const poll: FeedPoll = { pages: 0, tally: newTally(), cursor: (await state.get<string>(CURSOR_KEY)) ?? null };
		try {
			while (poll.pages < MAX_PAGES_PER_POLL && !this.abort.signal.aborted) {
				const page = await fetchPage(this.cfg, poll.cursor);
				await this.handle(page.events, poll);
				poll.pages++;
				if (page.next === null || page.next === poll.cursor) break;
				await state.set(CURSOR_KEY, page.next);
				poll.cursor = page.next;
			}
		} catch (err) {
			poll.error = (err as Error).message;
			this.svc.logger.warn(`feed: poll stopped at cursor ${poll.cursor ?? "(start)"}: ${poll.error}`);
		}
		this.lastPoll = poll;
		return poll;
	}

	/** One page: every event validated, then delivered in page order per customer; refused ones dead-lettered. */
	private async handle(events: unknown[], poll: FeedPoll): Promise<void> {
		const queue = new KeyedQueue(this.concurrency);
		let unavailable: DeliveryUnavailable | null = null;
		for (const [index, raw] of events.entries()) {
			const dedupKey = `feed/${poll.cursor ?? "start"}/${index}`;
			const v = this.sink.validate(raw);
			if (!v.ok) {
				await this.sink.deadLetter({ code: v.code, reason: v.reason, payload: raw, dedupKey });
				addToTally(poll.tally, "dead_lettered");
				continue;
			}
			await queue.push(v.event.subject, async () => {
				if (unavailable) return;
				const stop = await this.sink.deliverOrDeadLetter(v.event, { signal: this.abort.signal }, (reason, code) => ({ code, reason, payload: raw, dedupKey }),
					outcome => addToTally(poll.tally, outcome));
				unavailable ??= stop;
			});
		}
		await queue.drain();
		// The cursor stays before this page: the next poll reads it again.
		if (unavailable) throw unavailable;
	}
}

interface FeedVars { poller: FeedPoller | null }
type FeedService = SourceService & FeedVars;

const OFF = { type: "SOURCE_OFF", message: "the event feed is off: FEED_URL is not set" } as const;

export function createIngestFeedService(config: Config): ServiceSchema {
	const cfg = config.sources.feed;
	const schema: SourceSchema<FeedVars> = {
		name: "ingest-feed",
		mixins: [SourceMixin({ source: "feed", retryAction: "retryEvent", config })],
		actions: {
			/** Reads the feed now (the timer does this every FEED_POLL_MS anyway); resolves with what the poll did. */
			poll: {
				handler(this: FeedService): Promise<FeedPoll> {
					return engineOf(this.poller, OFF).poll();
				}
			},
			status: {
				handler(this: FeedService) {
					return { enabled: this.poller !== null, url: cfg.url ?? null, lastPoll: this.poller?.lastPoll ?? null };
				}
			},
			/** deadLetters.retry: the dead-lettered event, validated and delivered again. */
			retryEvent: {
				visibility: "public",
				params: { payload: { type: "any" } },
				async handler(this: FeedService, ctx: Context<{ payload: unknown }>): Promise<RetryOutcome> {
					const v = this.sink.validate(ctx.params.payload);
					if (!v.ok) throw contractError("INVALID_PAYLOAD", `still invalid: ${v.reason}`, { code: v.code, reason: v.reason });
					return { outcome: await this.sink.deliver(v.event) };
				}
			}
		},
		created(this: FeedService) {
			this.poller = null;
		},
		started(this: FeedService) {
			if (cfg.url === undefined) {
				this.logger.info("event feed is off (FEED_URL is not set)");
				return;
			}
			this.poller = new FeedPoller(this, cfg, config.sources.concurrency);
			this.poller.start();
			this.logger.info(`event feed: polling ${cfg.url} every ${cfg.pollMs} ms once caught up`);
		},
		async stopped(this: FeedService) {
			await this.poller?.stop();
		}
	};
	return schema as unknown as ServiceSchema;
}

export const source: SourceModule = { createService: createIngestFeedService };
