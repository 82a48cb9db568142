// A purchase whose provisioning failed (SPEC §9, "Customers get what they paid for, or their money
// back"): the balance is intact, the server keeps retrying and the vendor can retry it by hand; the
// customer may instead ask for their money back through the refund form (`#refund`).

export function ProvisioningFailed(props: { status: string }) {
  if (props.status !== 'failed') return null;
  return (
    <p class="small" data-field="provisioning_failed">
      Setup of what you bought has failed so far. Your balance is intact and nothing is charged while it is not
      delivered. If you would rather have your money back,{' '}
      <a href="#refund" data-action="request-refund">
        request a refund
      </a>
      .
    </p>
  );
}
