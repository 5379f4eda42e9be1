import { describe, expect, it } from 'vitest';

import { pagesToOpen } from '../src/browser-shim.js';

const PAGE = 'https://login.example/authorize?client_id=c&state=s';

describe('pagesToOpen', () => {
  it('takes the URL that xdg-open gets with words after it', () => {
    expect(pagesToOpen([PAGE, 'extra'])).toEqual([PAGE]);
  });

  it('takes the URL after options that a BROWSER entry adds', () => {
    expect(pagesToOpen(['--new-tab', '-n', PAGE])).toEqual([PAGE]);
  });

  it('takes every http and https URL, in order', () => {
    const other = 'http://localhost:8080/';

    expect(pagesToOpen([PAGE, '--new-window', other])).toEqual([PAGE, other]);
  });

  it('takes a URL whose scheme is written in capitals', () => {
    expect(pagesToOpen(['HTTPS://login.example/device'])).toEqual(['HTTPS://login.example/device']);
  });

  it('leaves out URLs that are not web pages, files and plain words', () => {
    expect(
      pagesToOpen([
        'file:///etc/passwd',
        'javascript:alert(1)',
        'mailto:a@example.com',
        'vscode://file/x',
        './report.html',
        'report.html',
        '',
      ]),
    ).toEqual([]);
  });
});
