import { describeTarget, SECRET_HEADER_NAMES } from '@porthole/shared';
import { describe, expect, it } from 'vitest';

describe('describeTarget', () => {
  it('keeps the path and the parameter names of an OAuth callback, and drops the values', () => {
    expect(describeTarget('/callback?code=4%2F0AbCdEf&state=xyz123&scope=openid+email')).toBe(
      '/callback?code&state&scope',
    );
  });

  it('never shows any parameter value', () => {
    const secrets = ['s3cr3t-code', 'st4te', 'ey.J0.k3n', 'p%40ss', 'one=two', 'https%3A%2F%2Fx'];
    const target = `/cb?code=${secrets[0]}&state=${secrets[1]}&access_token=${secrets[2]}&password=${secrets[3]}&odd=${secrets[4]}&redirect_uri=${secrets[5]}`;
    const described = describeTarget(target);

    expect(described).toBe('/cb?code&state&access_token&password&odd&redirect_uri');

    for (const secret of secrets) {
      expect(described).not.toContain(secret);
    }
  });

  it('returns a path without a query unchanged', () => {
    expect(describeTarget('/api/v1/items')).toBe('/api/v1/items');
    expect(describeTarget('/')).toBe('/');
  });

  it('drops the fragment of a target without a query', () => {
    expect(describeTarget('/done#access_token=secret')).toBe('/done');
  });

  it('drops the fragment after a query', () => {
    expect(describeTarget('/cb?code=abc#access_token=secret&x=y')).toBe('/cb?code');
  });

  it('drops a fragment that itself contains a question mark', () => {
    // Everything after "#" is the fragment, a "?" in it included (RFC 3986 section 3.5).
    const described = describeTarget('/cb#access_token=SECRET&state=s?x=1');

    expect(described).toBe('/cb');
    expect(described).not.toContain('SECRET');
  });

  it('drops an empty query and empty parameters', () => {
    expect(describeTarget('/path?')).toBe('/path');
    expect(describeTarget('/path?&&')).toBe('/path');
    expect(describeTarget('/path?&a=1&&b=2&')).toBe('/path?a&b');
  });

  it('keeps a parameter given without a value', () => {
    expect(describeTarget('/path?debug&verbose=')).toBe('/path?debug&verbose');
  });

  it('keeps repeated parameter names', () => {
    expect(describeTarget('/path?a=1&a=2')).toBe('/path?a&a');
  });

  it('keeps only the name of a parameter whose value holds "="', () => {
    expect(describeTarget('/path?sig=abc==&x=a=b=c')).toBe('/path?sig&x');
  });

  it('decodes percent-encoded names', () => {
    expect(describeTarget('/path?redirect%5Furi=x&items%5B%5D=1')).toBe(
      '/path?redirect_uri&items[]',
    );
  });

  it('replaces characters that could disturb a terminal or a log line', () => {
    expect(describeTarget('/path?a%0Ab=1&c%1B%5B31md=2&e+f=3&g%20h=4')).toBe(
      '/path?a_b&c_[31md&e_f&g_h',
    );
  });

  it('keeps a name that is not valid percent-encoding, made safe', () => {
    expect(describeTarget('/path?bad%E0%A4%A=1&%zz=2')).toBe('/path?bad_E0_A4_A&_zz');
  });

  it('cuts a long name to 40 characters', () => {
    expect(describeTarget(`/path?${'n'.repeat(100)}=v`)).toBe(`/path?${'n'.repeat(40)}`);
  });
});

describe('SECRET_HEADER_NAMES', () => {
  it('lists the credential-bearing headers in lower case', () => {
    expect(SECRET_HEADER_NAMES).toEqual(
      expect.arrayContaining(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']),
    );

    for (const name of SECRET_HEADER_NAMES) {
      expect(name).toBe(name.toLowerCase());
    }
  });
});
