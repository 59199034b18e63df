/**
 * {@link PointRole}: what a point does on its links. It lives in the core
 * layer because both the fabric (point registrations) and the directory
 * (stored points) need it, and the directory sits below the fabric.
 *
 * @module
 */

/** What a point does on its links. */
export const PointRole = { sender: 'sender', receiver: 'receiver', both: 'both' } as const;
/** One of {@link PointRole}. */
export type PointRole = (typeof PointRole)[keyof typeof PointRole];
