/**
 * This process's instance id: a random name its registry answers with, and
 * its peer client sends, so that an isoload asked to copy from a peer list
 * that names itself (a master's list holds api-int, which may resolve, or
 * move, to the master's own address) finds out at the first request and
 * skips itself, instead of waiting on its own copy of the blob it asked for.
 */

/** The header carrying the instance id, on every answer of the built-in registry and every peer request. */
export const INSTANCE_HEADER = "Isoload-Instance";

/** This process's id: random, new at every start. */
export const INSTANCE_ID: string = crypto.randomUUID();

/** True when a request (or answer) carries this very process's id. */
export function fromThisInstance(headers: Headers): boolean {
  return headers.get(INSTANCE_HEADER) === INSTANCE_ID;
}
