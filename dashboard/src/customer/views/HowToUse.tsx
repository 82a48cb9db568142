// How to use what was bought: decided by the resource's kind (S3 bucket settings; Gemini gateway
// base URL, the receipt's key while it is shown, and snippets, with the key while it is revealed).
import type { PurchaseResponse, ResourceInfo } from '../../api/types';
import { geminiSnippets } from '../snippets';
import { FactRow, Snippet } from '../components/Snippet';
import { GatewayKeyRow } from '../components/GatewayKey';
import type { GatewayKey } from '../gatewayKey';

export function HowToUse(props: { data: PurchaseResponse; gateway: GatewayKey }) {
  const p = props.data.purchase;
  const r: ResourceInfo | null = p.resource ?? null;
  const kind = r?.kind ?? '';
  const head = <h2 id="use-h">How to use it</h2>;
  if (p.status === 'deleted') {
    return (
      <section class="card" aria-labelledby="use-h" data-section="how-to-use" data-state="deleted">
        {head}
        <p>The resource was deleted after the grace period; there is nothing left to connect to.</p>
      </section>
    );
  }
  if (!r) {
    return (
      <section class="card" aria-labelledby="use-h" data-section="how-to-use" data-state="preparing">
        {head}
        <p data-field="resource" data-value="">
          Your resource is being prepared. Its details (where to connect, how) appear here as soon as it is ready; this
          page refreshes by itself.
        </p>
      </section>
    );
  }
  if (kind === 'gemini') {
    const base = r.gateway_base_url ?? window.location.origin;
    const g = props.gateway;
    const shown = g.revealed && g.state.kind === 'shown' ? g.state.secret : undefined;
    const s = geminiSnippets(base, shown);
    return (
      <section class="card" aria-labelledby="use-h" data-section="how-to-use" data-state="ready" data-kind={kind}>
        {head}
        <p>
          Use any Gemini client with this base URL and your gateway key.{' '}
          {shown ? 'The examples below include your key: keep them private.' : <>Replace <code>YOUR_KEY</code> with it (or show the key: the examples then include it).</>}{' '}
          Google's REST API is under <code>/v1beta</code> and <code>/v1</code>, Gemini's OpenAI-compatible API under{' '}
          <code>/v1beta/openai/</code>.
        </p>
        <dl class="facts">
          <FactRow label="Base URL" field="gateway_base_url" value={r.gateway_base_url} copyLabel="the gateway base URL" />
          <GatewayKeyRow gateway={g} />
        </dl>
        <Snippet id="snip-curl" label="curl" code={s.curl} />
        <Snippet id="snip-py" label="Python (google-genai)" code={s.python} />
        <Snippet id="snip-js" label="JavaScript (@google/genai)" code={s.js} />
        <Snippet id="snip-openai" label="Python (openai)" code={s.openai} />
      </section>
    );
  }
  if (kind === 's3') {
    const opts = `${r.endpoint ? ` --endpoint-url ${r.endpoint}` : ''}${r.region ? ` --region ${r.region}` : ''}`;
    const bucket = r.bucket ?? 'YOUR_BUCKET';
    return (
      <section class="card" aria-labelledby="use-h" data-section="how-to-use" data-state="ready" data-kind={kind}>
        {head}
        <p>
          Your storage is an S3 bucket of its own. The access key is in the gift card of your receipt (open it in
          OfficeX); lost it? Make a new one under <a href="#credentials-h">Keys and links</a>. Any S3 client works with
          these settings.
        </p>
        <dl class="facts">
          <FactRow label="Bucket" field="bucket" value={r.bucket} copyLabel="the bucket name" />
          <FactRow label="Endpoint" field="endpoint" value={r.endpoint} copyLabel="the endpoint URL" />
          <FactRow label="Region" field="region" value={r.region} copyLabel="the region" />
        </dl>
        <Snippet id="snip-aws" label="AWS CLI" code={`aws s3 ls s3://${bucket}/${opts}`} />
        <Snippet
          id="snip-boto"
          label="Python (boto3)"
          code={`import boto3

s3 = boto3.client(
    "s3",${r.endpoint ? `\n    endpoint_url="${r.endpoint}",` : ''}${r.region ? `\n    region_name="${r.region}",` : ''}
    aws_access_key_id="YOUR_ACCESS_KEY_ID",
    aws_secret_access_key="YOUR_SECRET_ACCESS_KEY",
)
for obj in s3.list_objects_v2(Bucket="${bucket}").get("Contents", []):
    print(obj["Key"])`}
        />
      </section>
    );
  }
  return (
    <section class="card" aria-labelledby="use-h" data-section="how-to-use" data-state="ready" data-kind={kind}>
      {head}
      <p>
        Your resource (<code data-field="kind" data-value={kind}>{kind}</code>) is ready. The vendor's instructions in
        your receipt say how to connect to it.
      </p>
    </section>
  );
}
