// The deposit QR code: EIP-681 `ethereum:<token>@<chainId>/transfer?address=<deposit>`, which a wallet
// app opens as a token transfer. Rendered by uqr to SVG and shown as an image (no inline script or
// style, allowed by the page's img-src 'self' data:).
import { renderSVG } from 'uqr';

export function eip681(token: string, chainId: number, deposit: string): string {
  return `ethereum:${token}@${chainId}/transfer?address=${deposit}`;
}

export function QrCode(props: { uri: string; label: string }) {
  const svg = renderSVG(props.uri, { ecc: 'M', border: 2 });
  const src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  return (
    <img class="qr" src={src} width={200} height={200} alt={props.label} data-field="deposit_qr" data-value={props.uri} />
  );
}
