import { describe, expect, it } from 'vitest';
import { runwayText } from './Holdings';

describe('gas runway in words', () => {
  it('says days left at the last 7 days’ rate, or why there is no figure', () => {
    expect(runwayText(12.7)).toBe('About 12 days left');
    expect(runwayText(1)).toBe('About 1 day left');
    expect(runwayText(0.4)).toBe('Less than a day left');
    expect(runwayText(null)).toBe('No gas spent in the last 7 days');
    expect(runwayText(undefined)).toBe('—');
  });
});
