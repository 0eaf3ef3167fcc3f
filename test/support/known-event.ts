// Test events as the actor gets them: validated (models/cloud-event.validator.ts), so `data` has the type `type` says.
// Throws on an invalid one, so a test can never feed the host an event no source would let through. The test's own
// clock is the event's time: events far from today are fine.
import type { CloudEvent } from "../../models/cloud-event.ts";
import { validateEvent } from "../../models/cloud-event.validator.ts";
import type { KnownCloudEvent } from "../../models/event-data.schemas.ts";

export function known(event: CloudEvent): KnownCloudEvent {
	const checked = validateEvent(event, { now: Date.parse(event.time) });
	if (!checked.ok) throw new Error(`test event ${event.source}/${event.id} is not valid: ${checked.reason}`);
	return checked.event;
}
